"""Placeholder: writes reference/cli.md (replaced by the generator)."""
import mkdocs_gen_files

with mkdocs_gen_files.open("reference/cli.md", "w") as f:
    f.write("# cli\n")
