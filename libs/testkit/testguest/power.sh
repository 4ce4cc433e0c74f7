#!/bin/sh
# acpid runs this on the ACPI power button: power off at once, as an OS's orderly shutdown ends.
sync
poweroff -f
