"""What runs inside the cgroup v2 guest beside the marked tests (scripts/cgv2-guest.sh)."""
