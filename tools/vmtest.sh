#!/usr/bin/env bash
# Run commands (by default the kernel-level tests) inside a VM on another kernel, virtme style:
# the host's / shared read-only over virtio-9p with a tmpfs overlay on top, so the repository
# and build tree are visible at the same paths; a second, writable 9p share carries the result
# out. By default it boots Debian bookworm's generic 6.1 LTS and then its 6.12 backport, one
# VM each (apt-get download, cached), and reports per kernel.
# The exit status is the command's; a VM that cannot start, dies, panics or hangs fails.
# How to run it and what it costs: README.md, "Kernels" and "Testing on other kernels"; the measured facts
# it is built on: the design notes, notes/vmtest.md beside DESIGN.md ("Tests").
set -euo pipefail

usage() {
	cat <<'EOF'
Usage: tools/vmtest.sh [OPTIONS] [KERNEL...] [-- COMMAND [ARG...]]

Boot a kernel under qemu-system-x86_64 with the host's root filesystem (read-only, tmpfs
overlay on top), run COMMAND as root in the current directory, print the guest's kernel
version and a result line ("VMTEST RESULT: PASS" / "VMTEST RESULT: FAIL rc=N"), power off.
Default COMMAND: tools/vm/run-tests.sh <repo>/build (ctest -L kernel, then a summary that
lists every skipped test with its reason; PPINJECT_VMTEST_REGEX / PPINJECT_VMTEST_EXCLUDE
narrow the set with ctest -R / -E)

KERNEL is a Debian series ("6.1", "6.12": the newest generic linux-image package of that
series in apt's lists, fetched with apt-get download and cached), a linux-image .deb or a
vmlinuz/bzImage. Several KERNELs: one VM each, one after the other, then a result line per
kernel; the exit status is the first failing kernel's. Default: $VMTEST_KERNELS, else
"6.1 6.12" (Debian bookworm's 6.1 LTS and its 6.12 backport).

Options:
  --kernel KERNEL  same as a KERNEL argument
  --modules DIR    the module tree for a single --kernel vmlinuz (a lib/modules/<version>
                   directory; default: next to the vmlinuz if unpacked from a .deb, else
                   /lib/modules/<version>)
  --timeout SECS   whole-VM time limit per kernel, boot included (default $VMTEST_TIMEOUT
                   or 2400)
  --mem MB         guest memory; the overlay's writes live in it (default 2048)
  --smp N          guest CPUs (default: host CPUs, at most 4)
  --out DIR        keep the results share here (cmd.sh, rc, console.log, summary, verdict,
                   anything the command writes to $VMTEST_OUT; with several kernels one
                   subdirectory each) instead of a temp dir removed on exit
  --verbose        kernel messages on the console
  -h, --help       this text

Environment:
  VMTEST_CACHE          cache dir (default ${XDG_CACHE_HOME:-/var/cache}/ppinject-vmtest)
  VMTEST_KERNELS        the kernels when none is given (default "6.1 6.12")
  VMTEST_KERNEL_PKG     a Debian package to boot when no KERNEL is given (instead of
                        VMTEST_KERNELS), e.g. linux-image-6.12.118+deb12-amd64-unsigned
  VMTEST_ACCEL          auto (KVM if /dev/kvm boots the guest, else TCG), kvm or tcg
  VMTEST_QEMU           the qemu-system-x86_64 binary
  VMTEST_EXTRA_MODULES  more module names to load in the guest (see tools/vm/modules.list)
  VMTEST_BUILD          build dir for the default command (default <repo>/build)
  VMTEST_TIMEOUT        default for --timeout
  GTEST_*, CTEST_*, PPINJECT_* variables are passed to the command in the guest.

Exit status: the command's; 124 when the time limit hit; 125 when the VM could not be
prepared, set up or died before the command finished.
EOF
}

t0=$(date +%s.%N)
prog=vmtest
out=
fail() {  # fail RC MESSAGE: one clear line (also the verdict once the results share exists), exit
	local rc=$1
	shift
	echo "$prog: error: $*" >&2
	[ -z "$out" ] || echo "FAIL rc=$rc: $*" >"$out/verdict" 2>/dev/null || true
	exit "$rc"
}
die() { fail 125 "$@"; }
note() { echo "$prog: $*" >&2; }

here=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)
repo=$(dirname "$here")
vmdir=$here/vm

tree='' kernels=() modules_arg='' timeout_s=${VMTEST_TIMEOUT:-2400} mem=2048 out_arg='' verbose=0
smp=$(nproc 2>/dev/null || echo 1)
[ "$smp" -le 4 ] || smp=4
while [ $# -gt 0 ]; do
	case $1 in
	--kernel) [ $# -ge 2 ] || die "--kernel needs a series or a path"; kernels+=("$2"); shift 2 ;;
	--kernel=*) kernels+=("${1#*=}"); shift ;;
	--modules) [ $# -ge 2 ] || die "--modules needs a directory"; modules_arg=$2; shift 2 ;;
	--modules=*) modules_arg=${1#*=}; shift ;;
	--timeout) [ $# -ge 2 ] || die "--timeout needs seconds"; timeout_s=$2; shift 2 ;;
	--timeout=*) timeout_s=${1#*=}; shift ;;
	--mem) [ $# -ge 2 ] || die "--mem needs megabytes"; mem=$2; shift 2 ;;
	--mem=*) mem=${1#*=}; shift ;;
	--smp) [ $# -ge 2 ] || die "--smp needs a count"; smp=$2; shift 2 ;;
	--smp=*) smp=${1#*=}; shift ;;
	--out) [ $# -ge 2 ] || die "--out needs a directory"; out_arg=$2; shift 2 ;;
	--out=*) out_arg=${1#*=}; shift ;;
	--verbose) verbose=1; shift ;;
	-h | --help) usage; exit 0 ;;
	--) shift; break ;;
	-*) die "unknown option $1 (see --help)" ;;
	*) kernels+=("$1"); shift ;;
	esac
done
for v in timeout_s mem smp; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "--${v%_s} must be a positive integer, not '${!v}'"
done
if [ ${#kernels[@]} -eq 0 ] && [ -z "${VMTEST_KERNEL_PKG:-}" ]; then
	read -r -a kernels <<<"${VMTEST_KERNELS-6.1 6.12}"
	[ ${#kernels[@]} -gt 0 ] || die "VMTEST_KERNELS is empty"
fi
is_series() { [ ! -e "$1" ] && [[ $1 =~ ^[0-9]+\.[0-9]+$ ]]; }
for k in "${kernels[@]}"; do
	is_series "$k" || [ -f "$k" ] ||
		die "kernel '$k': neither a Debian series (6.1, 6.12) nor a file (.deb, vmlinuz); a command goes after --"
done
if [ $# -eq 0 ]; then
	build=${VMTEST_BUILD:-$repo/build}
	[ -f "$build/CTestTestfile.cmake" ] || die "no CTest tree in $build: run 'make build' first"
	set -- "$here/vm/run-tests.sh" "$(readlink -f "$build")"
fi

# --- several kernels: one VM each, in turn, then one result line per kernel ----------------
if [ ${#kernels[@]} -gt 1 ]; then
	[ -z "$modules_arg" ] || die "--modules goes with a single --kernel vmlinuz"
	pass=(--timeout "$timeout_s" --mem "$mem" --smp "$smp")
	[ "$verbose" = 0 ] || pass+=(--verbose)
	if [ -n "$out_arg" ]; then
		mkdir -p "$out_arg" || die "cannot create --out $out_arg"
		outs=$(readlink -f "$out_arg")
	else
		outs=$(mktemp -d "${TMPDIR:-/tmp}/vmtest.XXXXXX")
		trap 'rm -rf "$outs"' EXIT
	fi
	results=() first_rc=0 i=0
	for k in "${kernels[@]}"; do
		i=$((i + 1))
		note "kernel $i of ${#kernels[@]}: $k"
		kout=$outs/$i-${k##*/}
		rc=0
		"${BASH_SOURCE[0]}" "${pass[@]}" --out "$kout" "$k" -- "$@" || rc=$?
		# Interrupted: no further kernels.
		[ "$rc" -ne 130 ] && [ "$rc" -ne 143 ] || exit "$rc"
		verdict=$(cat "$kout/verdict" 2>/dev/null) || verdict="FAIL rc=$rc before the VM ran (see above)"
		results+=("$k: $verdict")
		[ "$rc" -eq 0 ] || [ "$first_rc" -ne 0 ] || first_rc=$rc
	done
	note "results per kernel:"
	for r in "${results[@]}"; do echo "  $r" >&2; done
	if [ "$first_rc" -eq 0 ]; then note "PASS on every kernel (${kernels[*]})"
	else note "FAIL (exit status $first_rc): not every kernel passed"; fi
	exit "$first_rc"
fi
kernel_arg=${kernels[0]:-}

# --- tools ---------------------------------------------------------------------------------
need() {  # need TOOL PACKAGE
	command -v "$1" >/dev/null 2>&1 || die "$1 not found: apt-get install $2 (or make deps)"
}
qemu=${VMTEST_QEMU:-qemu-system-x86_64}
need "$qemu" qemu-system-x86
need cpio cpio
need gzip gzip
need timeout coreutils
need flock util-linux
need modinfo kmod
busybox=
for b in /bin/busybox /usr/bin/busybox $(command -v busybox 2>/dev/null || true); do
	# Static only: the initramfs has no libc.
	if [ -x "$b" ] && ! ldd "$b" >/dev/null 2>&1; then busybox=$b; break; fi
done
[ -n "$busybox" ] || die "no static busybox found: apt-get install busybox-static"
[ "$(uname -m)" = x86_64 ] || die "only x86_64 hosts are supported (uname -m: $(uname -m))"

# --- cache ---------------------------------------------------------------------------------
cache=${VMTEST_CACHE:-${XDG_CACHE_HOME:-/var/cache}/ppinject-vmtest}
mkdir -p "$cache"/{debs,kernels,initramfs} 2>/dev/null && [ -w "$cache" ] ||
	die "cache dir $cache is not writable (set VMTEST_CACHE)"
cache=$(readlink -f "$cache")
exec 9>"$cache/.lock"
flock 9  # one preparer at a time; released before the VM boots

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vmtest.XXXXXX")
qpid=
cleanup() {
	if [ -n "$qpid" ] && kill -0 "$qpid" 2>/dev/null; then
		kill -TERM "$qpid" 2>/dev/null || true
		wait "$qpid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'note "interrupted"; exit 130' INT
trap 'note "terminated"; exit 143' TERM

# Unpack a linux-image .deb into the cache (once); sets tree to its path.
unpack_deb() {  # unpack_deb DEB KEY
	local deb=$1 dest=$cache/kernels/$2
	if [ ! -d "$dest" ]; then
		need dpkg-deb dpkg
		note "unpacking $(basename "$deb")"
		local t
		t=$(mktemp -d "$cache/kernels/.unpack.XXXXXX")
		dpkg-deb -x "$deb" "$t" || { rm -rf "$t"; die "dpkg-deb -x $deb failed"; }
		rm -rf "$t/usr/share/doc"
		local kv
		for kv in "$t"/lib/modules/*; do
			# modules.dep for the guest's modprobe fallback (the package ships none).
			[ -d "$kv" ] && command -v depmod >/dev/null && depmod -b "$t" "$(basename "$kv")" 2>/dev/null || true
		done
		mv "$t" "$dest"
	fi
	tree=$dest
}

# The version string in a bzImage header (offset 0x20e holds its position - 0x200).
bzimage_version() {
	local off
	off=$(od -An -tu2 -j $((0x20e)) -N2 "$1" 2>/dev/null | tr -d ' ') || return 1
	[ -n "$off" ] && [ "$off" -gt 0 ] || return 1
	dd if="$1" bs=1 skip=$((off + 0x200)) count=128 2>/dev/null | tr '\0' '\n' | head -n1 | cut -d' ' -f1
}

# A kernel tree from a .deb: boot/vmlinuz-* and lib/modules/<version>.
use_tree() {
	local tree=$1 f
	vmlinuz=
	for f in "$tree"/boot/vmlinuz-*; do [ -f "$f" ] && vmlinuz=$f; done
	[ -n "$vmlinuz" ] || die "no boot/vmlinuz-* in $tree"
	kver=${vmlinuz##*/vmlinuz-}
	moddir=$tree/lib/modules/$kver
	[ -d "$moddir" ] || moddir=
}

# A Debian kernel series ("6.1", "6.12"): its generic flavour, the newest package apt knows
# (linux-image-6.1.0-N-amd64-unsigned, linux-image-6.12.N+deb12-amd64-unsigned; the signed
# linux-image-...-amd64 boots as well). None when the lists lack the series.
newest_pkg() {  # newest_pkg SERIES
	local re="^linux-image-${1//./\\.}\\.[0-9]+(-[0-9]+|\\+deb[0-9]+)?-amd64(-unsigned)?\$"
	apt-cache search --names-only "$re" 2>/dev/null | cut -d' ' -f1 | sort -V | tail -n1 || true
}
# apt-get update, once, when apt does not know the package we need and the cache cannot help.
apt_update() {
	need apt-get apt
	[ "$(id -u)" -eq 0 ] || die "apt knows no $1 and only root can run apt-get update"
	note "apt knows no $1: apt-get update"
	apt-get update -qq >"$tmp/apt.log" 2>&1 ||
		die "apt-get update failed: $(grep -E '^(E|W|Err):' "$tmp/apt.log" | head -n1)"
}
cached_tree() {  # cached_tree SERIES: the newest kernel of the series already unpacked
	ls -1d "$cache"/kernels/linux-image-"$1".*-amd64{,-unsigned}_* 2>/dev/null | sort -V | tail -n1 || true
}

series=
if [ -z "$kernel_arg" ] || is_series "$kernel_arg"; then
	series=$kernel_arg
fi
if [ -z "$kernel_arg" ] || [ -n "$series" ]; then
	pkg=${VMTEST_KERNEL_PKG:-}
	if [ -n "$series" ]; then
		pkg=$(newest_pkg "$series")
		if [ -z "$pkg" ] && [ -z "$(cached_tree "$series")" ]; then
			apt_update "linux-image-$series.* package"
			pkg=$(newest_pkg "$series")
		fi
	fi
	deb=
	if [ -n "$pkg" ]; then
		deb=$(ls -1 "$cache"/debs/"${pkg}"_*.deb 2>/dev/null | sort -V | tail -n1 || true)
		if [ -z "$deb" ]; then
			need apt-get apt
			apt-cache show "$pkg" >/dev/null 2>&1 || apt_update "$pkg"
			note "downloading $pkg (70-110 MB, once)"
			dl=$(mktemp -d "$cache/debs/.dl.XXXXXX")
			chmod 0755 "$dl"
			chown _apt "$dl" 2>/dev/null || true  # apt's download sandbox user
			if ! (cd "$dl" && apt-get download -q "$pkg") >"$tmp/apt.log" 2>&1; then
				err=$(grep -E '^(E|Err):' "$tmp/apt.log" | head -n1)
				rm -rf "$dl"
				die "apt-get download $pkg failed: ${err:-see apt-get output} (apt-get update? network?)"
			fi
			f=$(ls -1 "$dl"/*.deb 2>/dev/null | head -n1)
			[ -n "$f" ] || { rm -rf "$dl"; die "apt-get download $pkg produced no .deb"; }
			deb=$cache/debs/$(basename "$f")
			mv "$f" "$deb"
			rm -rf "$dl"
		fi
		unpack_deb "$deb" "$(basename "$deb" .deb)"
		use_tree "$tree"
	else
		# No apt lists (offline, never updated): the newest kernel of the series in the cache.
		tree=$(cached_tree "$series")
		[ -n "$tree" ] || die "no linux-image-$series.* package in apt's lists, even after apt-get update"
		note "apt knows no $series kernel package; using the cached $(basename "$tree")"
		use_tree "$tree"
	fi
	kernel_desc=${pkg:-$(basename "$tree")}
elif [ -f "$kernel_arg" ] && [[ $kernel_arg == *.deb ]]; then
	sum=$(sha256sum "$kernel_arg" | cut -c1-16)
	unpack_deb "$(readlink -f "$kernel_arg")" "$(basename "$kernel_arg" .deb)-$sum"
	use_tree "$tree"
	kernel_desc=$(basename "$kernel_arg")
elif [ -f "$kernel_arg" ]; then
	vmlinuz=$(readlink -f "$kernel_arg")
	kver=$(bzimage_version "$vmlinuz") || true
	[ -n "$kver" ] || die "$kernel_arg is neither a .deb nor a bzImage with a version string"
	moddir=
	for d in "$modules_arg" "$(dirname "$vmlinuz")/../lib/modules/$kver" "/lib/modules/$kver"; do
		if [ -n "$d" ] && [ -d "$d" ]; then moddir=$(readlink -f "$d"); break; fi
	done
	[ -z "$modules_arg" ] || [ -n "$moddir" ] || die "--modules $modules_arg is not a directory"
	kernel_desc=$vmlinuz
fi
[ -z "$modules_arg" ] || [ -z "$tree" ] || die "--modules only goes with --kernel vmlinuz"

# Boot the uncompressed vmlinux through qemu's PVH entry when the kernel has one: it skips the
# firmware and the in-guest decompression, about 3 s of the boot under TCG. Extracted once.
pvh_vmlinux() {  # pvh_vmlinux BZIMAGE DEST: 0 when DEST is a PVH-bootable vmlinux
	local src=$1 dest=$2 off magic tool
	[ ! -s "$dest" ] || return 0
	command -v readelf >/dev/null || return 2
	for magic in 'xz:\xfd7zXZ\x00' 'zstd:\x28\xb5\x2f\xfd' 'gzip:\x1f\x8b\x08'; do
		tool=${magic%%:*}
		command -v "$tool" >/dev/null || continue
		off=$(LC_ALL=C grep -obUaP -m1 "${magic#*:}" "$src" 2>/dev/null | head -n1 | cut -d: -f1)
		[ -n "$off" ] || continue
		# Trailing data after the stream makes the tools complain; the output is complete.
		if [ "$tool" = xz ]; then set -- --single-stream; else set --; fi
		tail -c +$((off + 1)) "$src" | "$tool" -dcq "$@" 2>/dev/null >"$dest.tmp" || true
		# XEN_ELFNOTE_PHYS32_ENTRY (18): the PVH entry point.
		if [ "$(head -c4 "$dest.tmp" 2>/dev/null | od -An -c | tr -d ' ')" = '177ELF' ] &&
			LC_ALL=C readelf -n "$dest.tmp" 2>/dev/null | grep -q 'Xen.*(0x00000012)'; then
			mv "$dest.tmp" "$dest"
			return 0
		fi
		rm -f "$dest.tmp"
		return 1
	done
	return 1
}
kdir=$(dirname "$vmlinuz")
if [ "${VMTEST_PVH:-1}" = 1 ]; then
	if [ -n "$tree" ]; then pvh=$tree/boot/vmlinux-$kver.pvh
	else pvh=$cache/kernels/pvh-$(sha256sum "$vmlinuz" | cut -c1-16)/vmlinux; mkdir -p "$(dirname "$pvh")"; fi
	if [ -e "$pvh.none" ]; then :
	else
		r=0
		pvh_vmlinux "$vmlinuz" "$pvh" || r=$?
		if [ $r -eq 0 ]; then vmlinuz=$pvh; elif [ $r -eq 1 ]; then : >"$pvh.none"; fi
	fi
fi

# The kernel's config, for bpftool feature probes in the guest.
kconfig=
for f in "$kdir/config-$kver" "${moddir:+$moddir/build/.config}"; do
	if [ -n "$f" ] && [ -f "$f" ]; then kconfig=$(readlink -f "$f"); break; fi
done

# --- initramfs: busybox, stage 1 and 2, and the modules (dependencies first) ---------------
# modules.list: "name [param=value...]" per line.
wanted= 
declare -A params=()
while read -r n rest; do
	[ -n "$n" ] || continue
	wanted+=" $n"
	params[${n//-/_}]=$rest
done < <(sed -e 's/#.*//' "$vmdir/modules.list")
wanted+=" ${VMTEST_EXTRA_MODULES:-}"
key=$( {
	cat "$vmdir/init" "$vmdir/run.sh" "$vmdir/modules.list" "${BASH_SOURCE[0]}"
	echo "$wanted" "$kver" "$moddir"
	[ -z "$moddir" ] || stat -c '%n %s %Y' "$moddir" "$moddir/modules.order" 2>/dev/null || true
	sha256sum <"$busybox"
} | sha256sum | cut -c1-16)
initrd=$cache/initramfs/$kver-$key.cpio.gz

build_initramfs() {
	local st=$tmp/initramfs
	mkdir -p "$st"/{bin,dev,modules}
	cp "$busybox" "$st/bin/busybox"
	install -m 0755 "$vmdir/init" "$st/init"
	install -m 0755 "$vmdir/run.sh" "$st/run.sh"
	mknod -m 600 "$st/dev/console" c 5 1 2>/dev/null || true  # init's first stdio (root only)
	: >"$st/modules/order"
	[ -n "$moddir" ] || { note "no module tree for $kver: assuming 9p, virtio and overlay are built in"; return 0; }

	declare -A path=() done_=() busy=()
	local f n
	while IFS= read -r f; do
		n=${f##*/}; n=${n%%.ko*}; n=${n//-/_}
		path[$n]=$f
	done < <(find "$moddir" -name '*.ko*' -type f)
	local builtin=" "
	[ ! -f "$moddir/modules.builtin" ] ||
		builtin=" $(sed -e 's|.*/||; s|\.ko.*||; s|-|_|g' "$moddir/modules.builtin" | tr '\n' ' ') "

	add() {  # depth-first: dependencies (and soft pre-dependencies) before the module
		local m=${1//-/_} d deps
		[ -z "${done_[$m]:-}" ] || return 0
		if [ -z "${path[$m]:-}" ]; then
			case $builtin in *" $m "*) ;; *) note "module $m: not in $kver, skipped" ;; esac
			done_[$m]=1
			return 0
		fi
		[ -z "${busy[$m]:-}" ] || return 0
		busy[$m]=1
		deps=$(modinfo -F depends "${path[$m]}" 2>/dev/null | tr ',' ' ')
		deps+=" $(modinfo -F softdep "${path[$m]}" 2>/dev/null | sed -n 's/.*pre:\([^:]*\).*/\1/p' |
			sed 's/post$//')"
		for d in $deps; do
			d=${d//-/_}
			if [ -n "${path[$d]:-}" ]; then add "$d"; fi
		done
		local src=${path[$m]} dst=$st/modules/$m.ko
		case $src in
		*.ko) cp "$src" "$dst" ;;
		*.ko.xz) xz -dc "$src" >"$dst" ;;
		*.ko.zst) zstd -qdc "$src" >"$dst" ;;
		*.ko.gz) gzip -dc "$src" >"$dst" ;;
		*) die "module $m: unknown compression ($src)" ;;
		esac || die "cannot copy module $src"
		echo "$m ${params[$m]:-}" >>"$st/modules/order"
		done_[$m]=1
	}
	for n in $wanted; do add "$n"; done
}

if [ ! -f "$initrd" ]; then
	note "building initramfs for $kver"
	build_initramfs
	(cd "$tmp/initramfs" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip -6) \
		>"$initrd.tmp" || die "cannot build the initramfs"
	mv "$initrd.tmp" "$initrd"
	rm -rf "$tmp/initramfs"
	# Older initramfs images of this kernel are stale now.
	find "$cache/initramfs" -name "$kver-*.cpio.gz" ! -path "$initrd" -delete 2>/dev/null || true
fi
flock -u 9

# --- the results share ----------------------------------------------------------------------
if [ -n "$out_arg" ]; then
	mkdir -p "$out_arg" || die "cannot create --out $out_arg"
	out=$(readlink -f "$out_arg")
	rm -f "$out"/{rc,rc.tmp,started,ended,cmd.sh,config,console.log,summary,verdict}
else
	out=$tmp/out
	mkdir -p "$out"
fi
chmod 0777 "$out"
{
	echo '# written by tools/vmtest.sh'
	printf 'cd -- %q || exit 125\n' "$PWD"
	while IFS= read -r v; do
		printf 'export %s=%q\n' "$v" "${!v}"
	done < <(compgen -e | grep -E '^(GTEST_|CTEST_|PPINJECT_)' || true)
	printf 'exec'
	printf ' %q' "$@"
	printf '\n'
} >"$out/cmd.sh"
shq() { local q="'\\''"; printf "'%s'" "${1//\'/$q}"; }  # quoting for busybox sh
{
	echo "VMTEST_MODULES_DIR=$(shq "$moddir")"
	echo "VMTEST_KCONFIG=$(shq "$kconfig")"
	echo "VMTEST_COMMAND_TEXT=$(shq "$*")"
	# The guest hides the host's /tmp under a tmpfs unless the command needs what is there.
	host_tmp=0
	for p in "$PWD" "$@"; do
		case $(readlink -m -- "$p" 2>/dev/null) in /tmp | /tmp/*) host_tmp=1 ;; esac
	done
	echo "VMTEST_HOST_TMP=$host_tmp"
} >"$out/config"

# --- boot ------------------------------------------------------------------------------------
tcg=(-accel "tcg,thread=multi" -cpu max)
kvm=(-accel kvm -cpu host)
# A /dev/kvm that opens is not always a KVM that runs a 64-bit guest (nested setups): in auto
# mode the first KVM boot must reach the initramfs within kvm_grace seconds, else TCG is used
# and the verdict is remembered for this host kernel and qemu.
kvm_grace=20
kvm_broken=$cache/kvm-broken-$(uname -r)-$("$qemu" --version | head -n1 | sha256sum | cut -c1-8)
case ${VMTEST_ACCEL:-auto} in
auto)
	if [ -r /dev/kvm ] && [ -w /dev/kvm ] && [ ! -e "$kvm_broken" ]; then try_kvm=1; else try_kvm=0; fi ;;
kvm) [ -r /dev/kvm ] && [ -w /dev/kvm ] || die "VMTEST_ACCEL=kvm but /dev/kvm is not usable"; try_kvm=1 ;;
tcg) try_kvm=0 ;;
*) die "VMTEST_ACCEL must be auto, kvm or tcg" ;;
esac
cmdline="console=ttyS0 panic=-1 mitigations=off no_timer_check i8042.noaux i8042.nokbd"
if [ "$verbose" = 1 ]; then cmdline+=" vmtest.verbose"; else cmdline+=" quiet loglevel=3"; fi
p9=(security_model=none multidevs=remap)
qemu_args=(
	-nodefaults -no-user-config -no-reboot -display none -monitor none -serial stdio
	-machine q35 -smp "$smp" -m "$mem"
	-kernel "$vmlinuz" -initrd "$initrd" -append "$cmdline"
	-fsdev "local,id=hostroot,path=/,readonly=on,$(IFS=,; echo "${p9[*]}")"
	-device "virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot"
	-fsdev "local,id=vmtestout,path=$out,$(IFS=,; echo "${p9[*]}")"
	-device "virtio-9p-pci,fsdev=vmtestout,mount_tag=vmtestout"
	-device "isa-debug-exit,iobase=0xf4,iosize=0x04"
)
log=$out/console.log
boot_desc=bzImage; [[ $vmlinuz != *.pvh && $vmlinuz != */vmlinux ]] || boot_desc="PVH vmlinux"
start_vm() {  # start_vm ACCEL_ARGS...: qemu in the background, console into $log
	: >"$log"
	timeout -k 5 "$timeout_s" "$qemu" "$@" "${qemu_args[@]}" </dev/null >"$log" 2>&1 &
	qpid=$!
}
tq=$(date +%s.%N)
accel_desc=tcg
if [ "$try_kvm" = 1 ]; then
	note "booting $kver ($kernel_desc, $boot_desc; kvm, $smp CPUs, ${mem} MB, limit ${timeout_s}s): $*"
	start_vm "${kvm[@]}"
	accel_desc=kvm
	for ((i = 0; i < kvm_grace * 5; i++)); do
		grep -qa 'VMTEST' "$log" && break
		kill -0 "$qpid" 2>/dev/null || break
		sleep 0.2
	done
	if ! grep -qa 'VMTEST' "$log" && [ "${VMTEST_ACCEL:-auto}" = auto ]; then
		why=$(grep -a -m1 'qemu-system-x86_64:' "$log" | tr -d '\r' || true)
		kill -TERM "$qpid" 2>/dev/null || true
		wait "$qpid" 2>/dev/null || true
		: >"$kvm_broken"
		note "KVM did not boot the guest (within ${kvm_grace}s)${why:+ ($why)}: using TCG (remembered in $kvm_broken)"
		try_kvm=0
		tq=$(date +%s.%N)
	fi
fi
if [ "$try_kvm" = 0 ]; then
	note "booting $kver ($kernel_desc, $boot_desc; tcg, $smp CPUs, ${mem} MB, limit ${timeout_s}s): $*"
	start_vm "${tcg[@]}"
	accel_desc=tcg
fi
tail -n +1 -s 0.2 -f --pid=$qpid "$log" &
tpid=$!
qrc=0
wait $qpid || qrc=$?
qpid=
wait $tpid 2>/dev/null || true
t1=$(date +%s.%N)

# --- result ----------------------------------------------------------------------------------
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
timing="VM $(secs "$tq" "$t1")s, total $(secs "$t0" "$t1")s"
if [ -f "$out/started" ]; then
	timing="boot $(awk '{ printf "%.1f", $1 }' "$out/started")s, $timing"
	[ ! -f "$out/ended" ] || timing="boot $(awk '{ printf "%.1f", $1 }' "$out/started")s, command $(secs "$(cat "$out/started")" "$(cat "$out/ended")")s, ${timing#*, }"
fi
if [ "$qrc" -eq 124 ] || [ "$qrc" -eq 137 ]; then
	if [ -f "$out/started" ]; then what="the command did not finish"; else what="the VM did not boot"; fi
	fail 124 "timeout: $what within ${timeout_s}s ($timing)"
fi
if [ -f "$out/rc" ]; then
	rc=$(cat "$out/rc")
	[[ $rc =~ ^[0-9]+$ ]] || die "unreadable exit status '$rc' from the guest"
	# The command's own one-line summary, if it wrote one (run-tests.sh: the test counts).
	summary=$(head -n1 "$out/summary" 2>/dev/null | cut -c1-200 || true)
	if [ "$rc" -eq 0 ]; then verdict="PASS on $kver, $accel_desc"
	else verdict="FAIL rc=$rc on $kver, $accel_desc"; fi
	verdict+="${summary:+: $summary} ($timing)"
	echo "$verdict" >"$out/verdict"
	note "$verdict"
	exit "$rc"
fi
err=$(grep -a -m1 -E 'VMTEST ERROR:|Kernel panic|qemu-system-x86_64:' "$log" | tr -d '\r' || true)
[ -n "$err" ] || err="no result from the guest (qemu exit status $qrc)"
die "the VM failed before the command finished: $err ($timing)"
