"""Where the files of the built-in datasets are found.

`find_data_file(name, filenames, data_dir)` looks, in this order, in
1. `data_dir` (the `--data-dir` option) and `data_dir/<name>/`;
2. the directory in the environment variable `SSLAUDIT_DATA` (several may be joined with the
   OS path separator, ':' on Linux) and its `<name>/` subfolder;
3. the dataset's standard system places (fashion-mnist: `/usr/share/datasets/fashion-mnist`,
   where Debian's package `dataset-fashion-mnist` installs it).
The first directory holding every requested file wins; nothing is downloaded.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from ..errors import UserError

ENV_VAR = "SSLAUDIT_DATA"

SYSTEM_DIRS: dict[str, tuple[str, ...]] = {
    "fashion-mnist": ("/usr/share/datasets/fashion-mnist",),
}

HOW_TO_GET: dict[str, str] = {
    "fashion-mnist": (
        "install them with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or download the four IDX files from https://github.com/zalandoresearch/fashion-mnist and pass --data-dir DIR"
    ),
    "adult": ('download adult.data and adult.test from the UCI Machine Learning Repository dataset "Census Income" (Adult, https://archive.ics.uci.edu/dataset/2/adult) and pass --data-dir DIR'),
}


def candidate_dirs(dataset_name: str, data_dir: str | Path | None = None) -> list[Path]:
    """The directories searched for `dataset_name`, in order (existing or not)."""
    out: list[Path] = []
    if data_dir is not None and str(data_dir) != "":
        d = Path(data_dir).expanduser()
        out += [d, d / dataset_name]
    env = os.environ.get(ENV_VAR, "")
    for part in env.split(os.pathsep):
        if part.strip():
            d = Path(part.strip()).expanduser()
            out += [d, d / dataset_name]
    out += [Path(p) for p in SYSTEM_DIRS.get(dataset_name, ())]
    seen: set[str] = set()
    uniq = []
    for d in out:
        if str(d) not in seen:
            seen.add(str(d))
            uniq.append(d)
    return uniq


def find_data_file(
    dataset_name: str,
    filenames: Sequence[str | Sequence[str]],
    data_dir: str | Path | None = None,
) -> dict[str, Path]:
    """Find the files of a built-in dataset: {first name of each entry: path}.

    Each entry of `filenames` is a file name or a sequence of alternative names (e.g. a gzipped
    and an uncompressed name); the first alternative that exists is used. All files must lie in
    the same directory. Raises a UserError naming every place searched and how to get the files.
    """
    if data_dir is not None and str(data_dir) != "" and not Path(data_dir).expanduser().is_dir():
        raise UserError(f"the data directory {str(data_dir)!r} does not exist or is not a directory: check --data-dir")
    entries = [(f,) if isinstance(f, str) else tuple(f) for f in filenames]
    dirs = candidate_dirs(dataset_name, data_dir)
    partial: list[str] = []
    for d in dirs:
        if not d.is_dir():
            continue
        found: dict[str, Path] = {}
        for alts in entries:
            for alt in alts:
                p = d / alt
                if p.is_file():
                    found[alts[0]] = p
                    break
        if len(found) == len(entries):
            return found
        if found:
            missing = [alts[0] for alts in entries if alts[0] not in found]
            partial.append(f"{d} lacks {', '.join(missing)}")
    names = ", ".join(alts[0] for alts in entries)
    looked = "; ".join(str(d) for d in dirs) if dirs else "nowhere (no --data-dir given and $" + ENV_VAR + " unset)"
    extra = f" ({'; '.join(partial)})" if partial else ""
    how = HOW_TO_GET.get(dataset_name, "pass --data-dir DIR with the directory holding them")
    raise UserError(f"cannot find the {dataset_name} files ({names}); looked in: {looked}{extra}. To get them: {how} (or set ${ENV_VAR} to that directory)")
