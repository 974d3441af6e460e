"""Read a pytest JUnit XML report, print the pass/skip/fail counts and every skip reason, and
exit 1 if any test failed or errored, or skipped for a missing dependency (CI installs every
optional dependency, so such a skip is a test that never ran).

    python .ci/check_skips.py REPORT.xml

Under VISIONLOOP_CI=1, tests/conftest.py already turns those skips into errors; this check
catches any that slip past it (a bare `pytest.skip("... not installed")`, a `skipif` on a
missing program) and makes the counts visible in the CI log. Tests left out by the `-m`
markers (slow, gpu, real_weights) are deselected, not skipped, and do not appear here.
Standard library only: it runs with any python3.
"""

from __future__ import annotations

import re
import sys
import xml.etree.ElementTree as ET

# A skip whose reason matches one of these is a skip for a missing dependency.
MISSING = re.compile(r"missing dependency|could not import|no module named|not installed|"
                     r"needs? the \S+ package|requires? \S+ \(not installed\)", re.IGNORECASE)
# ... unless tests/conftest.py skipped it on purpose (a dependency listed in its CI_MAY_LACK).
ALLOWED = "allowed in CI:"


def read_report(path: str) -> dict:
    root = ET.parse(path).getroot()
    counts = {"passed": 0, "xfailed": 0, "skipped": 0, "failed": 0, "errors": 0}
    skips: list[tuple[str, str]] = []
    for case in root.iter("testcase"):
        name = "::".join(filter(None, [case.get("classname"), case.get("name")]))
        if case.find("failure") is not None:
            counts["failed"] += 1
        elif case.find("error") is not None:
            counts["errors"] += 1
        elif (skipped := case.find("skipped")) is not None:
            if skipped.get("type") == "pytest.xfail":  # an expected failure is not a skip
                counts["xfailed"] += 1
                continue
            counts["skipped"] += 1
            why = skipped.get("message") or ""
            if why in ("", "collection skipped"):  # a module-level skip keeps its reason in the text
                why = (skipped.text or why).strip()
                why = (re.search(r"Skipped: (.*)[\"']\)$", why) or [why, why])[1]  # ('file', line, 'Skipped: why')
            skips.append((name, why))
        else:
            counts["passed"] += 1
    return {"counts": counts, "skips": skips}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: check_skips.py REPORT.xml", file=sys.stderr)
        return 2
    try:
        report = read_report(argv[0])
    except (OSError, ET.ParseError) as exc:
        print(f"check_skips: cannot read the test report {argv[0]}: {exc}", file=sys.stderr)
        return 1
    counts, skips = report["counts"], report["skips"]
    print("tests: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
    missing = [(name, why) for name, why in skips if MISSING.search(why) and not why.startswith(ALLOWED)]
    for name, why in skips:
        print(f"  {'MISSING DEPENDENCY' if (name, why) in missing else 'skipped'}: {name}: {why}")
    sys.stdout.flush()
    if missing:
        print(f"check_skips: {len(missing)} test(s) skipped for a missing dependency that CI should install "
              "(install it in .ci/run, or list it in CI_MAY_LACK in tests/conftest.py)", file=sys.stderr)
    if counts["failed"] or counts["errors"]:
        print(f"check_skips: {counts['failed']} failed, {counts['errors']} errors", file=sys.stderr)
    return 1 if missing or counts["failed"] or counts["errors"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
