"""Placeholder: writes reference/api/index.md (replaced by the generator)."""
import mkdocs_gen_files

with mkdocs_gen_files.open("reference/api/index.md", "w") as f:
    f.write("# Python API\n\n::: medmodal.errors\n")
