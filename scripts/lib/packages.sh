# The Debian packages moorage's scripts install, in one place (sourced, not run):
# install-deps.sh installs the runtime ones, test-deps.sh the test ones, and
# test-cgv2.sh builds them all into the cgroup v2 guest's image, so the guest never
# spends emulated minutes in apt.
# shellcheck disable=SC2034  # the arrays are read by the scripts that source this

# what any moord needs (production and tests alike)
runtime_packages=(crun runc conmon busybox-static golang-github-containers-common tini catatonit
                  nftables iproute2 ca-certificates python3 python3-venv
                  containernetworking-plugins iptables)  # CNI networks, macvlan, ipvlan (portmap uses iptables)

# what only the tests use: a registry server (registry 2.8) for pull/push, htpasswd for
# its basic auth, skopeo to read the archives moord saves, Prometheus to scrape moord,
# rclone's Docker volume plugin (with fuse3 for its mounts), mkfs.ext4 and losetup for the
# small loop-mounted disk that test_full_disk.py fills (Debian base has both; named so a
# slimmed image gets them)
test_packages=(docker-registry apache2-utils skopeo prometheus rclone fuse3 e2fsprogs mount)

# clients only, installed without their recommends: Debian's docker-compose 1.29
# (without the docker.io it recommends)
test_client_only_packages=(docker-compose)

# Prints, one per line, those of the given packages that are not installed.
missing_packages() {
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
    done
}
