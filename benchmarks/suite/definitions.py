"""The benchmarks `benchmarks/run.py` knows, by name (--only)."""

from __future__ import annotations

from suite.core import Benchmark, Contender
from suite.startup import explain_args, report_args

HARNESS_RUN = "suite.harness_cli:run_task"
TRAINER, LOOP = "suite.text:run_trainer", "suite.text:run_loop"
TEXT_NOTES = (
    "One recipe for all: the task's protocol (`quick`; `smoke` with --tiny), its train and test rows, the "
    "packaged MiniLM, AdamW groups (backbone lr, head head_lr, no decay on biases and norms), linear "
    "warm-up, gradient clipping, max_length. Scores come from the task's own metric code.",
    "`harness` tests the epoch best on dev and evaluates dev after every epoch (outside `train_s`); the "
    "others train without evaluation and test the last epoch.",
    "`trainer*` and `loop` use transformers' AutoModelFor...Classification heads (sequence classification "
    "pools [CLS] through BERT's pooler; the harness mean-pools).",
)


def text_benchmark(task: str, title: str, scores: tuple[str, ...]) -> Benchmark:
    """`harness run` against transformers' Trainer (random and length-grouped) and a plain PyTorch loop."""
    options = {"task": task}
    return Benchmark(
        name=task, title=title, scores=scores, reference="trainer",
        timed="training seconds: the harness record's `timing.train_s` (the epochs, without dev evaluation); "
              "`trainer.train()`; the loop's epochs",
        contenders=(
            Contender("harness", HARNESS_RUN, options,
                      f"`harness run --task {task} --protocol quick --seed S --json --quiet`"),
            Contender("trainer", TRAINER, options | {"sampling": "random"},
                      "transformers `Trainer`, default random sampling"),
            Contender("trainer-grouped", TRAINER, options | {"sampling": "group_by_length"},
                      "transformers `Trainer`, `train_sampling_strategy='group_by_length'`"),
            Contender("loop", LOOP, options,
                      "plain PyTorch loop on the harness's batches (`harness.training.batching."
                      "LengthGroupedBatchSampler`, generator seeded with the seed)"),
        ),
        notes=TEXT_NOTES,
    )


def fashion_mnist() -> Benchmark:
    options = {"task": "fashion-mnist"}
    return Benchmark(
        name="fashion-mnist", title="image fine-tuning: the harness against a plain timm loop",
        timed="training seconds: the harness record's `timing.train_s`; the timm loop's epochs",
        reference="timm", scores=("top1", "macro_f1"),
        contenders=(
            Contender("harness", HARNESS_RUN, options,
                      "`harness run --task fashion-mnist --protocol quick --seed S --json --quiet`"),
            Contender("timm", "suite.vision:run_timm", options,
                      "plain PyTorch loop over timm's tf_efficientnet_lite0 with the packaged weights, timm's "
                      "transform at the protocol's image size plus a horizontal flip"),
        ),
        notes=("Same rows, backbone weights, image size and optimiser recipe; `harness` tests the epoch best "
               "on dev, `timm` the last one.",),
    )


def feature_cache() -> Benchmark:
    sweep = "suite.sweeps:run_sweep"
    return Benchmark(
        name="feature-cache", title="a 5-seed frozen sweep with and without the feature cache",
        timed="wall seconds of the whole sweep (`harness run --task keywords --adapt frozen`, seeds 0-4; "
              "0-1 with --tiny), every command included",
        reference="no-cache", scores=("accuracy", "macro_f1"), setup="suite.sweeps:setup",
        contenders=(
            Contender("no-cache", sweep, {"cache": "per-seed", "calls": "separate"},
                      "one command per seed, each with an empty HARNESS_CACHE_DIR: features computed every time"),
            Contender("cache", sweep, {"cache": "shared", "calls": "separate"},
                      "one command per seed, one cache directory (empty at the start): computed once, reused"),
            Contender("cache-seeds", sweep, {"cache": "shared", "calls": "seeds"},
                      "one command, `--seeds 0,1,2,3,4`, one cache directory (empty at the start)"),
        ),
        notes=("Setup, untimed: the keyword corpus is synthesised (or found) once and linked into every "
               "cache directory, and one throwaway run warms the file cache.",
               "Every round sweeps the same seeds; the scores are means over the sweep's seeds.",
               "The ratio's bound: without the cache each of the n seeds pays start-up, the features and the head; "
               "with it the first seed still pays all three, so no sweep of n seeds reaches n times (5x here) "
               "unless everything but the features costs nothing. `features_s`, `train_s` and `total_s` per seed "
               "are in the JSON, so what is left over can be read off.",),
    )


def startup() -> Benchmark:
    command, harness = "suite.startup:run_command", "`harness"
    return Benchmark(
        name="startup", title="command start-up and explanation cost",
        timed="wall seconds of one command in a fresh process (explain: per explained item)",
        reference="help", scores=("items", "explain_s_per_item"), setup="suite.startup:setup", default_rounds=5,
        contenders=(
            Contender("help", command, {"argv": ["--help"]}, f"{harness} --help`"),
            Contender("list-tasks", command, {"argv": ["list", "tasks"]}, f"{harness} list tasks`"),
            Contender("show", command, {"argv": ["show", "{run_id}"]}, f"{harness} show RUN_ID`"),
            Contender("report", command, {"argv": report_args()},
                      f"{harness} report --leaderboard bench-startup --out DIR` (Markdown, HTML, CSV, JSON, plots)"),
            Contender("explain", "suite.startup:run_explain", {"argv": explain_args()},
                      f"{harness} explain RUN_ID --force --json --quiet`, seconds per item"),
        ),
        notes=("Setup, untimed: a smoke leaderboard (MiniLM full; ner and sentiment x seeds 0, 1; sentiment "
               "seed 0 with --tiny) run into a store of its own, which every contender reads.",
               "Rounds are repetitions here (5 by default); the seed plays no part.",),
    )


BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in (
    text_benchmark("ner", "WNUT-16 NER fine-tuning: harness vs Trainer vs a plain loop",
                   ("entity_f1", "entity_precision", "entity_recall")),
    text_benchmark("sentiment", "tweet sentiment fine-tuning: harness vs Trainer vs a plain loop",
                   ("accuracy", "macro_f1")),
    fashion_mnist(),
    feature_cache(),
    startup(),
)}
