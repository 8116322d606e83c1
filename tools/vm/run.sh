#!/run/vmtest/bin/busybox sh
# tools/vmtest.sh, stage 2: PID 1 after switch_root into the overlay on the host's root.
# Copied by stage 1 to /run/vmtest/run and started with the busybox copied next to it, so it
# does not depend on the host's /bin/sh. Finishes the mounts, runs the command the host wrote
# to /run/vmtest/out/cmd.sh (host bash, clean environment), writes its exit status to the
# results share, prints the result marker and powers off. PID 1 never exits.

bb=/run/vmtest/bin
out=/run/vmtest/out
/run/vmtest/bin/busybox --install -s $bb
export PATH=$bb

poweroff_now() {
	sync
	printf "\\$(printf %03o "$1")" | dd of=/dev/port bs=1 seek=244 count=1 2>/dev/null
	poweroff -f
	while :; do sleep 3600; done
}
die() {
	echo "VMTEST ERROR: $*"
	echo "VMTEST RESULT: FAIL (vm setup)"
	poweroff_now 2
}
trace() { :; }
grep -q 'vmtest.verbose' /proc/cmdline && trace() { echo "VMTEST [$(cut -d' ' -f1 /proc/uptime)] $*"; }
trace "stage 2"
try() { "$@" || echo "VMTEST WARNING: failed: $*"; }

# The console: no CR before LF, so logs captured on the host are plain text.
stty -onlcr 2>/dev/null

[ -r $out/config ] || die "no $out/config from the host"
. $out/config

trace "config read"
# A clean /tmp, unless the command works in the host's /tmp (a CI checkout there): then the
# overlay's /tmp (the host's, writes kept in guest memory) stays visible.
[ "$VMTEST_HOST_TMP" = 1 ] || try mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
mkdir -p /dev/pts /dev/shm
try mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
try mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
[ -e /dev/stdin ] || ln -s /proc/self/fd/0 /dev/stdin
[ -e /dev/stdout ] || ln -s /proc/self/fd/1 /dev/stdout
[ -e /dev/stderr ] || ln -s /proc/self/fd/2 /dev/stderr
try mount -t bpf -o mode=0700 bpf /sys/fs/bpf
try mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
grep -q " /sys/kernel/debug " /proc/mounts || try mount -t debugfs debugfs /sys/kernel/debug
grep -q " /sys/kernel/tracing " /proc/mounts || try mount -t tracefs tracefs /sys/kernel/tracing
mkdir -p /run/netns /run/lock

trace "mounts done"
# modprobe by name as a fallback (everything the tests need is already loaded): the kernel's
# module tree from the host's cache, at the path the host's kmod looks for.
kver=$(uname -r)
if [ -n "$VMTEST_MODULES_DIR" ] && [ ! -e "/lib/modules/$kver/modules.dep" ] &&
	[ -e "$VMTEST_MODULES_DIR/modules.dep" ]; then
	mkdir -p "/lib/modules/$kver" && try mount --bind "$VMTEST_MODULES_DIR" "/lib/modules/$kver"
fi

# The kernel's config where bpftool and friends look for it.
if [ -n "$VMTEST_KCONFIG" ] && [ ! -e "/boot/config-$kver" ]; then
	mkdir -p /boot && cp "$VMTEST_KCONFIG" "/boot/config-$kver"
fi

trace "modules dir and config"
hostname vmtest
try ip link set lo up
ulimit -l unlimited 2>/dev/null

started=$(cut -d' ' -f1 /proc/uptime)
echo "$started" >$out/started
echo "VMTEST: guest kernel $(uname -r) ($(uname -m)), userspace up after ${started}s"
echo "VMTEST: running $VMTEST_COMMAND_TEXT"

env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
	PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	VMTEST=1 VMTEST_OUT=$out \
	/bin/bash $out/cmd.sh
rc=$?

ended=$(cut -d' ' -f1 /proc/uptime)
echo "$ended" >$out/ended
echo "$rc" >$out/rc.tmp && mv $out/rc.tmp $out/rc
if [ "$rc" -eq 0 ]; then
	echo "VMTEST RESULT: PASS"
else
	# Kernel warnings and worse logged while the command ran (a WARN splat, an oops...).
	dmesg -r | awk -v t="$started" '{
		lvl = substr($0, 2, index($0, ">") - 2) % 8
		ts = substr($0, index($0, "[") + 1); ts = substr(ts, 1, index(ts, "]") - 1) + 0
		if (ts >= t && lvl <= 4) print substr($0, index($0, ">") + 1)
	}' | tail -n 60 >/tmp/.vmtest-kmsg
	if [ -s /tmp/.vmtest-kmsg ]; then
		echo "VMTEST: kernel warnings while the command ran (last 60):"
		cat /tmp/.vmtest-kmsg
	fi
	echo "VMTEST RESULT: FAIL rc=$rc"
fi
poweroff_now 1
