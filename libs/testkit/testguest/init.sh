#!/bin/busybox sh
# PID 1 of LIMEN's test guest: mount the basics, load the virtio network and ACPI button drivers,
# take a DHCP lease, listen for the power button, then serve a shell on the serial console.
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /dev /run /tmp
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net button evdev; do
	[ -f "/lib/modules/$m.ko" ] && insmod "/lib/modules/$m.ko" 2>/dev/null
done
ip link set lo up
if ip link set eth0 up 2>/dev/null; then
	udhcpc -i eth0 -s /etc/udhcpc.sh -q -n -t 5 -T 1 >/dev/null 2>&1
fi
case " $(cat /proc/cmdline) " in
*" limen.acpi=off "*) ;; # a guest that ignores the power button, as a hung OS would
*) acpid -c /etc/acpi -l /dev/null ;;
esac
echo "limen-testguest: up"
while true; do
	setsid cttyhack sh -c 'stty -echo; PS1= exec sh'
done
