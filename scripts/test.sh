#!/usr/bin/env bash
# The whole test suite: lint, strict types, then every test (as root, for real).
set -euo pipefail
[[ $EUID -eq 0 ]] || { echo "test.sh: run as root" >&2; exit 1; }
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"

ruff check .
ruff format --check .

# mypy resolves the pyswarm namespace through a tree of symlinks that mirrors
# pyproject's package-dir mapping (mypy does not follow setuptools' import hooks).
rm -rf .typecheck && mkdir -p .typecheck/pyswarm
for d in common proto agent manager cli lab images stack; do ln -s "../../$d" ".typecheck/pyswarm/$d"; done
MYPYPATH=.typecheck mypy -p pyswarm
MYPYPATH=.typecheck mypy tests bench scripts

set +e
pytest -q -ra --durations=25 "$@"
rc=$?
set -e
if [[ $rc == 5 ]]; then
    echo "test.sh: pytest collected no tests; that is a failure" >&2
fi
exit $rc
