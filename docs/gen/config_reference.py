"""Placeholder: writes reference/config.md (replaced by the generator)."""
import mkdocs_gen_files

with mkdocs_gen_files.open("reference/config.md", "w") as f:
    f.write("# config\n")
