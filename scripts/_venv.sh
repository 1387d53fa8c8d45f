# Sourced by the scripts: make a virtual environment (once; $VENV, default .venv) and install
# the project into it with the extras named in $EXTRAS, within the pins of the constraints
# file named in $CONSTRAINTS, if any. Needs only python3 >= 3.10 on the machine.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    ${CONSTRAINTS:+--constraint "$CONSTRAINTS"} -e ".[${EXTRAS}]"
