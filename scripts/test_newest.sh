#!/usr/bin/env bash
# The fast test lane (pytest -m "not slow") against the newest versions pyproject.toml's ranges allow,
# without constraints.txt: what `pip install fundus-vessels[...]` gives a user today. A failure here
# and a pass in .ci/run means a new release broke something: fix it, or add an upper bound with the
# reason next to it in pyproject.toml. Then scripts/lock_deps.sh moves the lock forward.
# Usage: bash scripts/test_newest.sh [PYTEST_ARGS...]     (venv kept in .venv-newest for a rerun)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-newest
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check --upgrade --upgrade-strategy eager -e ".[dev]"
echo "== newest versions resolved (differences from constraints.txt)"
diff <(grep '==' constraints.txt | LC_ALL=C sort -f) \
  <("$venv/bin/pip" freeze --exclude-editable | grep '==' | sed -E 's/^(torch==[^+]+)\+.*/\1/' | LC_ALL=C sort -f) || true
echo "== pytest -m 'not slow'"
"$venv/bin/python" -m pytest -q -p no:cacheprovider -m "not slow" "$@"
