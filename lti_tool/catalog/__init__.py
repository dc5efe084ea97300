"""The catalog: issuers, stacks, micro-credentials and their versions, parts, prompts, artifact
requirements and rubrics; the YAML import and export (config/catalog/README.md).

Modules: `models` (tables), `fileformat` (parse, validate and write the YAML format, no
database), `importer` (all-or-nothing import and export against the database), `service` (the
read API other packages use, and marking a version started).
"""
