"""Built-in task plugins (imported as `harness_tasks`), registered through the `harness.tasks` entry points."""
