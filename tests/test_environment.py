"""What a run record says about the machine: the CPU (model, family/model numbers, SIMD features) is recorded,
because the same code trains several times faster or slower on hosts that share a brand name."""

from __future__ import annotations

from pathlib import Path

from harness.environment import cpu_flags, cpu_generation, cpu_model, describe_cpu, describe_environment, machine_label

ZEN3 = ("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 1\nmodel name\t: AMD EPYC\n"
        "flags\t\t: fpu sse2 avx2 fma\n\nprocessor\t: 1\ncpu family\t: 99\nmodel name\t: Other\n"
        "flags\t\t: avx512f\n")
ZEN4 = ("processor\t: 0\ncpu family\t: 25\nmodel\t\t: 17\nmodel name\t: AMD EPYC\n"
        "flags\t\t: avx2 avx512f avx512_bf16\n")


def test_the_first_processor_is_read_with_its_generation_and_features(tmp_path: Path) -> None:
    zen3, zen4 = tmp_path / "zen3", tmp_path / "zen4"
    zen3.write_text(ZEN3)
    zen4.write_text(ZEN4)
    assert cpu_model(zen3) == "AMD EPYC" and cpu_generation(zen3) == "family 25, model 1"
    assert cpu_flags(zen3) == ["avx2"]  # the second processor's avx512f is not this one's
    assert cpu_flags(zen4) == ["avx2", "avx512f", "avx512_bf16"]
    one, other = describe_cpu(zen3), describe_cpu(zen4)
    assert one["cpu"] == "AMD EPYC (family 25, model 1)" and other["cpu"] == "AMD EPYC (family 25, model 17)"
    assert one["cpu_cores"] >= 1
    missing = tmp_path / "none"
    assert cpu_generation(missing) is None and cpu_flags(missing) == [] and cpu_model(missing)


def test_a_record_names_its_machine_and_old_records_say_it_was_not_recorded() -> None:
    env = describe_environment("cpu")
    assert {"cpu", "cpu_flags", "cpu_cores"} <= set(env)
    assert machine_label(env).startswith(env["cpu"])
    assert machine_label({"device": "cpu", "cpu": "AMD EPYC (family 25, model 17)", "cpu_flags": ["avx2", "avx512f"],
                          "cpu_cores": 2}) == "AMD EPYC (family 25, model 17) [avx2, avx512f], 2 cores"
    assert machine_label({"device": "cpu", "device_name": "x86_64"}) == "CPU not recorded"
    assert machine_label({"device": "cuda", "device_name": "NVIDIA H200", "gpu_count": 2}) == "2 x NVIDIA H200"
    assert machine_label({"device": "cuda", "device_name": "NVIDIA H200", "gpu_count": 1}) == "NVIDIA H200"
