#!/usr/bin/env bash
# Installs everything fieldlink needs on a fresh Debian machine with Python 3.11: the
# system packages (broker, Redis, gpsd, gpsfake, chrony, Node for the web assets, Chromium for
# the page tests, nginx for the proxy tests), a virtualenv in .venv with the server,
# agent and dev extras, and the browser assets from npm.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || need_pkgs+=(mosquitto)
command -v mosquitto_pub >/dev/null || need_pkgs+=(mosquitto-clients)
# several server instances share a Redis; the tests start their own redis-server
command -v redis-server >/dev/null || [ -x /usr/bin/redis-server ] || need_pkgs+=(redis-server)
# the proxy tests run deploy/nginx/fieldlink.conf in a real nginx
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need_pkgs+=(nginx-light)
command -v openssl >/dev/null || need_pkgs+=(openssl)
command -v gpsd >/dev/null || [ -x /usr/sbin/gpsd ] || need_pkgs+=(gpsd)
command -v gpsfake >/dev/null || need_pkgs+=(gpsd-clients)
command -v npm >/dev/null || need_pkgs+=(nodejs npm)
# the page tests drive Debian's Chromium headless; CJK fonts for the Chinese screens
command -v chromium >/dev/null || need_pkgs+=(chromium fonts-noto-cjk)
# the agent's chrony config is checked by chronyd's own parser (never run as a daemon here)
[ -x /usr/sbin/chronyd ] || need_pkgs+=(chrony)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_pkgs+=(python3-venv)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    echo "==> installing Debian packages: ${need_pkgs[*]}"
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}"
fi

if [ ! -x .venv/bin/python ]; then
    echo "==> creating .venv"
    python3 -m venv .venv
fi
stamp=.venv/.fieldlink-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "==> installing fieldlink with its server, agent and dev extras into .venv"
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -e '.[server,agent,dev]'
    touch "$stamp"
fi

if [ ! -d node_modules ] || [ package.json -nt node_modules ]; then
    echo "==> installing web assets from npm"
    npm install --no-audit --no-fund --loglevel=error
    touch node_modules
fi
