#!/usr/bin/env bash
# Before a release: the agent on a Pi's userland. Builds a Debian bookworm arm64 root with
# debootstrap (run by qemu-user-static), installs the agent from this checkout exactly as
# firmware_config/README.md says, then runs the agent's tests and a gpsfake replay inside it
# and prints the install time and the agent's RSS and CPU. Not part of `make test` (it takes
# a while under emulation); run as root: `sudo scripts/arm64-check.sh`.
#
# FIELDLINK_ARM64_ROOT: where the root is kept between runs (default below); delete it to
# start from scratch. Under qemu the agent's RSS includes the emulator's and its CPU time is
# emulated: read them as upper bounds of what a Pi needs.
set -euo pipefail
cd "$(dirname "$0")/.."
here=$PWD
root=${FIELDLINK_ARM64_ROOT:-/var/cache/fieldlink/arm64-bookworm}
[ "$(id -u)" = 0 ] || { echo "run as root: debootstrap and chroot need it" >&2; exit 2; }

step() { printf '\n== %s\n' "$*"; }

step "host tools: debootstrap, qemu-user-static, binfmt-support"
if ! command -v debootstrap >/dev/null || [ ! -e /usr/bin/qemu-aarch64-static ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap qemu-user-static binfmt-support
fi
# arm64 programs run through qemu by the kernel's binfmt_misc (a container may not mount it)
mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
update-binfmts --enable qemu-aarch64 2>/dev/null || true
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || { echo "qemu-aarch64 is not registered with binfmt_misc" >&2; exit 2; }

if [ ! -e "$root/.fieldlink-root" ]; then
    step "debootstrap bookworm arm64 into $root"
    rm -rf "$root" && mkdir -p "$root"
    start=$(date +%s)
    # debootstrap's own resolver takes no alternatives: the rest comes through apt below
    debootstrap --arch=arm64 --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "$root"
    echo "debootstrap took $(( $(date +%s) - start )) s"
fi

mounts=(proc sys dev dev/pts)
mkdir -p "$root/proc" "$root/sys" "$root/dev"
cleanup() {
    for ((i=${#mounts[@]}-1; i>=0; i--)); do
        mountpoint -q "$root/${mounts[i]}" && umount -l "$root/${mounts[i]}"
    done
}
trap cleanup EXIT
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"
mount --bind /dev "$root/dev"
mount --bind /dev/pts "$root/dev/pts"  # gpsfake talks to gpsd through a pty
cp /etc/resolv.conf "$root/etc/resolv.conf"

step "the checkout (tracked files as they are now) into /tmp/fieldlink"
rm -rf "$root/tmp/fieldlink" "$root/opt/fieldlink"
mkdir -p "$root/tmp/fieldlink"
git ls-files -z --cached --others --exclude-standard | tar --null -T - -c | tar -x -C "$root/tmp/fieldlink"

# the way to the package index is the host's: its CA bundle (a proxy that inspects TLS has
# its own CA there), its proxy and index variables; nothing else of the host's pip settings
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/fieldlink-host-ca.crt"
reach=(PIP_CERT=/etc/fieldlink-host-ca.crt)
for name in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY PIP_INDEX_URL; do
    [ -n "${!name:-}" ] && reach+=("$name=${!name}")
done
# inside: a clean environment, as on the Pi (no host venv, no host wheels)
inside() {
    chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
        "${reach[@]}" "$@"
}
inside uname -m

if [ ! -e "$root/.fieldlink-root" ]; then
    step "what a Pi gets from apt (firmware_config/README.md step 2), and the tests' broker"
    inside apt-get update -qq
    inside env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        gpsd gpsd-clients chrony python3-venv mosquitto procps
    touch "$root/.fieldlink-root"
fi

step "install the agent as firmware_config/README.md step 4 does"
start=$(date +%s)
inside python3 -m venv --system-site-packages /opt/fieldlink/venv
inside /opt/fieldlink/venv/bin/pip install --quiet '/tmp/fieldlink[agent]'
install_s=$(( $(date +%s) - start ))
inside /opt/fieldlink/venv/bin/fieldlink-agent --help >/dev/null
inside /opt/fieldlink/venv/bin/python -c 'import lgpio; from importlib.metadata import version as v
print("installed: lgpio", v("lgpio"), "gpiozero", v("gpiozero"), "paho-mqtt", v("paho-mqtt"))'
# no GPIO chip in the root: the agent must say so, naming what to check
inside sh -c 'printf "[unit]\nid = \"car-1\"\n" > /tmp/pins.toml; /opt/fieldlink/venv/bin/fieldlink-agent --config /tmp/pins.toml --validate-config; echo "exit $?"'
echo "agent install: ${install_s} s"

step "the agent's tests, in a second venv with the test tools"
inside python3 -m venv /opt/fieldlink/tests
inside /opt/fieldlink/tests/bin/pip install --quiet '/tmp/fieldlink[server,agent]' 'pytest~=9.0' 'pytest-timeout~=2.4' 'hypothesis~=6.150'
# under emulation everything is several times slower: a test that waits on a timeout may
# run out of it; the replay below still runs, and the exit status says the tests failed
tests=0
inside sh -c 'cd /tmp/fieldlink && /opt/fieldlink/tests/bin/python -m pytest -q -p no:cacheprovider --timeout 600 tests/agent tests/wire' || tests=$?

step "a gpsfake replay: the agent on the Pi's userland, 60 s of a real receiver's log"
inside env PYTHONPATH=/tmp/fieldlink /opt/fieldlink/tests/bin/python \
    /tmp/fieldlink/scripts/arm64_replay.py /opt/fieldlink/venv/bin/fieldlink-agent
exit "$tests"
