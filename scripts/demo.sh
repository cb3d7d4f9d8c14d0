#!/usr/bin/env bash
# Set up everything on a fresh machine and run the portal with demo data in the
# embedded mode (SQLite file in ./instance, e-mails kept in the database).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
ensure_venv ""
ensure_pdf_fonts

export FLASK_APP=wsgi
export PORTAL_ENV="${PORTAL_ENV:-embedded}"
flask db-upgrade
flask demo
port="${PORT:-5000}"
echo
echo "Portal running at http://127.0.0.1:${port}/  (e-mails: http://127.0.0.1:${port}/dev/mailbox)"
echo "Press Ctrl+C to stop."
exec flask run --host 127.0.0.1 --port "${port}"
