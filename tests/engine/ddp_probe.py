"""The part shared by the 2-process DDP driver scripts of the engine tests: it records, per
process, every file opened for writing, created or renamed into ``writes-<rank>-<pid>.txt`` in the
probe folder (``sys.argv[1]``), so a test can check that only global rank 0 writes."""

import textwrap

WRITE_RECORDER = textwrap.dedent('''
    import builtins, os, sys
    from pathlib import Path

    probe = Path(sys.argv[1])
    rank = int(os.environ.get("LOCAL_RANK", "0"))
    log = open(probe / f"writes-{rank}-{os.getpid()}.txt", "a")  # opened before the recorder

    def record(path):
        log.write(os.path.abspath(os.fsdecode(path)) + "\\n"); log.flush()

    real_open, real_os_open, real_replace, real_rename = builtins.open, os.open, os.replace, os.rename

    def open_(file, mode="r", *a, **k):
        if isinstance(file, (str, bytes, os.PathLike)) and any(c in mode for c in "wax+"):
            record(file)
        return real_open(file, mode, *a, **k)

    def os_open(path, flags, *a, **k):
        if flags & (os.O_CREAT | os.O_WRONLY | os.O_RDWR):
            record(path)
        return real_os_open(path, flags, *a, **k)

    def replace(src, dst, *a, **k):
        record(dst); return real_replace(src, dst, *a, **k)

    def rename(src, dst, *a, **k):
        record(dst); return real_rename(src, dst, *a, **k)

    builtins.open, os.open, os.replace, os.rename = open_, os_open, replace, rename

''')
