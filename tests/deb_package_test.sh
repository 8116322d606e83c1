#!/usr/bin/env bash
# The Debian package as an operator meets it: `make deb` builds it (debhelper; lintian
# finds no error), dpkg installs it on this machine, the installed binary runs and checks
# the packaged config, both man pages render without warnings, the unit passes
# `systemd-analyze verify`, is not enabled (the example config names interfaces this
# host may not have), and a purge leaves none of its files behind. The package is
# purged on every way out of this script, a failed check included. Registered with CTest
# (label "package"): deb_package_test.sh SOURCE_DIR BUILD_DIR. Needs root.
set -euo pipefail
src=$1 build=$2

skip() {
  echo "[  SKIPPED ] $*"
  exit 0
}
fail() {
  echo "FAILED: $*" >&2
  exit 1
}
[ "$(id -u)" -eq 0 ] || skip "needs root (dpkg -i)"
# One at a time on this machine (the test of another checkout installs the same package).
exec 9>/run/lock/ppinject-deb-test.lock
flock -w 300 9 || fail "another package test holds /run/lock/ppinject-deb-test.lock"
state=$(dpkg-query -W -f='${db:Status-Status}' ppinject 2>/dev/null || true)
if [ -n "$state" ] && [ "$state" != not-installed ]; then
  skip "a ppinject package is on this machine already ($state): the test would replace it"
fi

echo "== make deb"
make -C "$src" deb BUILD="$build" >"$build/deb-test.log" 2>&1 ||
  { tail -40 "$build/deb-test.log"; fail "make deb (log: $build/deb-test.log)"; }
version=$("$build/ppinject" --version | sed -n 's/^ppinject //p')
deb=$build/ppinject_${version}_amd64.deb
[ -f "$deb" ] || fail "make deb did not leave $deb"

# Every file the package ships, as an absolute path (directories end in /).
mapfile -t shipped < <(dpkg-deb -c "$deb" | awk '{print substr($6, 2)}' | grep -v '/$')

purge() {
  dpkg --purge ppinject >/dev/null 2>&1 || true
}
trap purge EXIT
trap 'exit 1' INT TERM HUP

echo "== dpkg -i $deb"
dpkg -i "$deb"

echo "== the BGP health checker and BIRD templates (README: Scaling out)"
bgp=/usr/share/ppinject/bgp
for f in ppinject-bgp-health front.conf router.conf; do
  cmp -s "$bgp/$f" "$src/tools/bgp/$f" || fail "$bgp/$f is missing or not tools/bgp/$f"
done
[ -x "$bgp/ppinject-bgp-health" ] || fail "$bgp/ppinject-bgp-health is not executable"

echo "== the binary, its config and the conffile"
[ "$(/usr/sbin/ppinject --version)" = "ppinject $version" ] || fail "/usr/sbin/ppinject --version"
/usr/sbin/ppinject check --config /etc/ppinject/ppinject.toml >/dev/null ||
  fail "the packaged example config does not pass check"
dpkg-query -W -f='${Conffiles}\n' ppinject | grep -q '^ /etc/ppinject/ppinject.toml ' ||
  fail "/etc/ppinject/ppinject.toml is not a conffile"

echo "== man pages"
for page in /usr/share/man/man8/ppinject.8.gz /usr/share/man/man5/ppinject.toml.5.gz; do
  out=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$page" 2>"$build/deb-test-man.err") ||
    fail "man -l $page"
  [ ! -s "$build/deb-test-man.err" ] || fail "man -l $page warns: $(cat "$build/deb-test-man.err")"
  case $page in
    *ppinject.8.gz) want="status --check" ;;
    *) want="udp_flow_timeout" ;;
  esac
  grep -q -- "$want" <<<"$out" || fail "$page does not mention $want"
  echo "$page: $(wc -l <<<"$out") lines"
done
rm -f "$build/deb-test-man.err"

echo "== systemd unit"
unit=/lib/systemd/system/ppinject.service
[ -f "$unit" ] || fail "no $unit"
grep -q '^ExecStart=/usr/sbin/ppinject run --config /etc/ppinject/ppinject.toml$' "$unit" ||
  fail "$unit does not run /usr/sbin/ppinject"
systemd-analyze verify "$unit" || fail "systemd-analyze verify $unit"
[ ! -e /etc/systemd/system/multi-user.target.wants/ppinject.service ] ||
  fail "the unit was enabled on install (it must wait for the operator's config)"

echo "== dpkg --purge"
dpkg --purge ppinject
trap - EXIT
state=$(dpkg-query -W -f='${db:Status-Status}' ppinject 2>/dev/null || true)
[ -z "$state" ] || [ "$state" = not-installed ] || fail "still known to dpkg after purge: $state"
for f in "${shipped[@]}" /etc/ppinject; do
  [ ! -e "$f" ] || fail "$f is left after purge"
done
left=$(find /var/lib/systemd/deb-systemd-helper-enabled /var/lib/systemd/deb-systemd-helper-masked \
  -name 'ppinject*' 2>/dev/null || true)
[ -z "$left" ] || fail "systemd state left after purge: $left"
echo "deb package: built, installed, checked and purged (${#shipped[@]} files)"
