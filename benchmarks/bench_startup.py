"""Start-up cost of the CLI, this working tree against an earlier commit, same run.

    .venv/bin/python benchmarks/bench_startup.py [--base COMMIT] [--runs 15] [--strict]

Measured for each tree, as CPU time (user + system) of a child process from
`resource.getrusage(RUSAGE_CHILDREN)`, the best of `--runs` runs (the least disturbed by
whatever else the machine does; runs of the two trees alternate):

- `python -c pass`: the bare interpreter (with this venv's site-packages), the floor;
- `monitor --help`;
- `monitor check` on the bundled config.toml (the working tree's file, for both trees).

Both trees run with this interpreter and venv: the base commit is checked out with
`git worktree add --detach` into a temporary directory (removed afterwards) and put first on
PYTHONPATH, so its `monitor` package shadows the editable install of this one (checked: the
script asks the child where `monitor` came from). The CLI is started as the console script
does: `from monitor.cli import main; sys.exit(main())`.

`--base` defaults to the merge-base of HEAD and `main`: the commit before this branch's work.

Targets (PASS/FAIL is printed; the exit status is 0 unless `--strict`):
- `--help` costs under 0.15 s of CPU beyond the bare interpreter;
- `check` costs under half of the base commit's (total CPU, the stricter reading of
  "beyond the interpreter").
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HELP_TARGET = 0.15  # seconds of CPU beyond the bare interpreter
CHECK_RATIO_TARGET = 0.5  # of the base commit's

CLI = "import sys; from monitor.cli import main; sys.exit(main())"


# Children run in a neutral folder: `python -c` puts the current folder first on sys.path.
NEUTRAL = Path(tempfile.gettempdir())


def cpu_of(argv: Sequence[str], env: dict[str, str]) -> float:
    """CPU seconds (user + system) that one run of `argv` took; it must exit 0."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(argv, env=env, cwd=NEUTRAL, capture_output=True, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(
            f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr.decode(errors='replace')}"
        )
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def environment(pythonpath: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    env.pop("PYTHONPATH", None)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return env


def commands(config: Path) -> dict[str, list[str]]:
    python = sys.executable
    return {
        "python -c pass": [python, "-c", "pass"],
        "monitor --help": [python, "-c", CLI, "--help"],
        "monitor check": [python, "-c", CLI, "check", "--config", str(config)],
    }


def package_dir(env: dict[str, str]) -> Path:
    probe = "import monitor, pathlib; print(pathlib.Path(monitor.__file__).parent)"
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=NEUTRAL, capture_output=True, check=True
    )
    return Path(out.stdout.decode().strip()).resolve()


def merge_base() -> str:
    out = subprocess.run(
        ["git", "merge-base", "HEAD", "main"], cwd=ROOT, capture_output=True, check=False
    )
    if out.returncode != 0:
        raise SystemExit("no merge-base of HEAD and main: give --base COMMIT")
    return out.stdout.decode().strip()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", metavar="COMMIT", help="default: merge-base of HEAD and main")
    parser.add_argument("--runs", type=int, default=15, help="runs per command (best is kept)")
    parser.add_argument("--strict", action="store_true", help="exit 1 on a FAIL")
    args = parser.parse_args(argv)
    base = args.base or merge_base()
    config = ROOT / "config.toml"
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        checkout = Path(tmp) / "base"
        subprocess.run(
            ["git", "worktree", "add", "--detach", "--quiet", str(checkout), base],
            cwd=ROOT,
            check=True,
        )
        try:
            trees = {"working tree": environment(None), f"base {base[:10]}": environment(checkout)}
            for name, env in trees.items():
                where = package_dir(env)
                expected = (ROOT if env.get("PYTHONPATH") is None else checkout).resolve()
                if where.parent != expected:
                    raise SystemExit(f"{name}: monitor imported from {where}, not {expected}")
            best = measure(trees, commands(config), args.runs)
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(checkout)], cwd=ROOT, check=False
            )
    return report(best, list(trees), args.runs, base, args.strict)


def measure(
    trees: dict[str, dict[str, str]], cmds: dict[str, list[str]], runs: int
) -> dict[tuple[str, str], float]:
    best: dict[tuple[str, str], float] = {}
    for env in trees.values():  # warm-up: .pyc files written, file cache filled
        for argv in cmds.values():
            cpu_of(argv, env)
    for _ in range(runs):
        for label, argv in cmds.items():
            for name, env in trees.items():
                cpu = cpu_of(argv, env)
                best[name, label] = min(cpu, best.get((name, label), cpu))
    return best


def report(
    best: dict[tuple[str, str], float], trees: list[str], runs: int, base: str, strict: bool
) -> int:
    new, old = trees
    print(f"CPU seconds (user + system), best of {runs} runs; {sys.executable}")
    print(f"base: {base}\n")
    print(f"{'':16}{new:>16}{old:>18}{'ratio':>8}   beyond the interpreter (new / base)")
    floor_new, floor_old = best[new, "python -c pass"], best[old, "python -c pass"]
    for label in ("python -c pass", "monitor --help", "monitor check"):
        a, b = best[new, label], best[old, label]
        ratio = f"{a / b:.2f}" if b else "-"
        extra = "" if label == "python -c pass" else f"   {a - floor_new:.3f} / {b - floor_old:.3f}"
        print(f"{label:16}{a:16.3f}{b:18.3f}{ratio:>8}{extra}")
    help_extra = best[new, "monitor --help"] - floor_new
    check_ratio = best[new, "monitor check"] / best[old, "monitor check"]
    verdicts = [
        (
            help_extra < HELP_TARGET,
            f"--help: {help_extra:.3f} s beyond the interpreter (target < {HELP_TARGET} s)",
        ),
        (
            check_ratio < CHECK_RATIO_TARGET,
            f"check: {check_ratio:.2f} of the base commit's CPU (target < {CHECK_RATIO_TARGET})",
        ),
    ]
    print()
    for ok, text in verdicts:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    return 1 if strict and not all(ok for ok, _ in verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())
