"""Declarative, resumable pipelines: load, validate and run ``pipelines/*.yaml``.

``load``      YAML with line numbers; duplicate keys rejected (a custom SafeLoader).
``validate``  the recipe against ``schemas/recipe.schema.json`` and each stage's parameter
              dataclass, before anything runs; every error names the file and line.
``stages``    the stage registry: recipe stage name -> entry module, imported only when used.
``run``       plan (resolve paths, ask each stage whether its outputs are complete) and run,
              writing ``run.json`` after every stage so a failed run resumes where it stopped.

Paths in a recipe are relative to ``--workdir`` when given, else to the recipe file's directory.
"""
