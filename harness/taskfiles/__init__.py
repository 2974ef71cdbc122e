"""Tasks declared in TOML task files instead of Python: parsing (`schema`), reading the data through Hugging
Face `datasets` (`sources`), the task class on the kind's base (`build`), and where files are found
(`discovery`). README.md, "Adding a task", documents the file format."""

from harness.taskfiles.schema import KINDS, TaskFile, TaskFileError, read_task_file

__all__ = ["KINDS", "TaskFile", "TaskFileError", "read_task_file"]
