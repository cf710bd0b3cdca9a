#!/usr/bin/env bash
# A local PostgreSQL for the test suite's second pass: installs Debian's postgresql where it
# is missing, starts its cluster where none answers on 127.0.0.1:5432, and makes sure the
# role the tests use exists (it may create and drop databases). Prints the server's URL.
set -euo pipefail
role=fieldlink_test
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"

if ! command -v pg_ctlcluster >/dev/null; then
    echo "==> installing Debian's postgresql" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends postgresql >&2
fi
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    echo "==> starting PostgreSQL" >&2
    read -r version cluster < <(pg_lsclusters --no-header | awk '{print $1, $2; exit}')
    $sudo pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" start
    for _ in $(seq 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
fi
$sudo runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 >&2 <<SQL
SELECT 'CREATE ROLE $role LOGIN CREATEDB PASSWORD ''$role'''
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$role')\gexec
SQL
echo "postgresql://$role:$role@127.0.0.1:5432"
