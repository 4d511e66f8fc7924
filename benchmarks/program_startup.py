"""How long `pulumi preview` waits for this program, measured offline.

Runs, each in a fresh Python process and several times:
  floor    - only `import pulumi` and the pulumi_azure_native modules the program uses;
  program  - the whole program for a stack under Pulumi mocks (tools.offline.run_program).
Prints median wall time and peak memory (max RSS) of each, and program / floor.
Targets (issue 5): program <= 1.5 x floor and <= 250 MB peak.

    python -m benchmarks.program_startup [--stack prod] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

# Each snippet prints {"seconds": wall time inside the process, "peak_mb": max RSS} as JSON.
_MEASURE = """
import json, resource, time
start = time.perf_counter()
{body}
elapsed = time.perf_counter() - start
print(json.dumps({{"seconds": elapsed, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def azure_modules_used() -> list[str]:
    """The `pulumi_azure_native.<module>` imports in the program's own code."""
    # `import pulumi_azure_native.web as web` and `from pulumi_azure_native import web` alike.
    pattern = re.compile(r"^(?:import pulumi_azure_native\.(\w+)|from pulumi_azure_native import (\w+))", re.MULTILINE)
    modules = set()
    for path in [REPO_ROOT / "__main__.py", *sorted((REPO_ROOT / "components").glob("*.py"))]:
        modules.update(f"pulumi_azure_native.{a or b}" for a, b in pattern.findall(path.read_text()))
    return sorted(modules)


def floor_body() -> str:
    # pulumi_azure_native modules load lazily, on first attribute access; the program touches each one,
    # so the floor does too (`hasattr`), or it would measure nothing but empty module shells.
    lines = ["import pulumi"]
    for module in azure_modules_used():
        lines += [f"import {module}", f"hasattr({module}, '_utilities')"]
    return "\n".join(lines)


def program_body(stack: str) -> str:
    return f"from tools.offline import run_program\nrun_program({stack!r})"


def measure(body: str) -> dict[str, float]:
    """Run `body` in a new interpreter; wall time includes interpreter start-up, like the CLI's."""
    import time

    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", _MEASURE.format(body=body)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"benchmark process failed:\n{result.stderr}")
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    return {"wall_s": wall, "inside_s": figures["seconds"], "peak_mb": figures["peak_mb"]}


def summarise(samples: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(s[key] for s in samples) for key in samples[0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stack", default="prod")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)

    measure(floor_body())  # warm the file cache so the first sample is not an outlier
    floors, programs = [], []
    for _ in range(args.runs):  # interleaved, so machine noise hits both alike
        floors.append(measure(floor_body()))
        programs.append(measure(program_body(args.stack)))
    floor, program = summarise(floors), summarise(programs)

    print(f"modules imported by the floor: pulumi, {', '.join(azure_modules_used())}")
    print(f"{'':10} {'wall (s)':>9} {'peak (MB)':>10}   (median of {args.runs} fresh processes)")
    print(f"{'floor':10} {floor['wall_s']:9.2f} {floor['peak_mb']:10.0f}")
    print(f"{'program':10} {program['wall_s']:9.2f} {program['peak_mb']:10.0f}   stack={args.stack}")
    ratio = program["wall_s"] / floor["wall_s"]
    print(
        f"program / floor: {ratio:.2f}x (target <= 1.5x); program peak {program['peak_mb']:.0f} MB (target <= 250 MB)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
