#!/bin/sh
# udhcpc's hook: configure the lease it got.
case "$1" in
bound | renew)
	ip addr flush dev "$interface"
	ip addr add "$ip/${mask:-24}" dev "$interface"
	[ -n "$router" ] && ip route add default via "${router%% *}" dev "$interface"
	echo "$ip" >/run/lease
	;;
esac
