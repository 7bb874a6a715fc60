#!/usr/bin/env bash
# Build a stand-in for the python:3.11-slim-bookworm base from Debian's archive alone (debootstrap),
# for machines that can reach Debian but no container registry. Bookworm's python3 is 3.11, like the
# public base. Prints the image name; builds only when podman does not have it yet.
#   usage: scripts/image_base.sh [IMAGE]        (default mmm-backfill-base:bookworm)
set -euo pipefail
IMAGE=${1:-mmm-backfill-base:bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if podman image exists "$IMAGE"; then
  echo "$IMAGE"
  exit 0
fi
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  bookworm "$root" "$MIRROR" >&2
# Trust what this host trusts, so builds behind a TLS-inspecting proxy reach PyPI as the host does.
if [ -s /etc/ssl/certs/ca-certificates.crt ]; then
  cp /etc/ssl/certs/ca-certificates.crt "$root/usr/local/share/ca-certificates/host-trust.crt"
  chroot "$root" update-ca-certificates >/dev/null 2>&1
fi
# Same shape as the public image: `python` on PATH, no apt lists or caches kept.
ln -sf /usr/bin/python3 "$root/usr/local/bin/python"
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
tar -C "$root" -c . | podman import \
  --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' - "$IMAGE" >&2
echo "$IMAGE"
