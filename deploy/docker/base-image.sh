#!/usr/bin/env bash
# Builds the base image the Dockerfile starts from, debian:bookworm-slim,
# from Debian's own packages with debootstrap, and loads it with
# `docker import`, so the image builds on a machine that cannot pull from a
# registry (an air-gapped site, or this project's CI). Does nothing when an
# image of that name is already there (pulled or built before).
#
# Cached: the downloaded .deb files (debootstrap --cache-dir) and the
# finished root file system tarball live in $GLASSBOX_DOCKER_CACHE (default
# ~/.cache/glassbox/docker); a second run after `docker rmi` only imports.
#
# Environment:
#   GLASSBOX_DEBIAN_MIRROR  the Debian mirror (default: the first Debian URI
#                           apt uses on this machine, else deb.debian.org)
#   GLASSBOX_DOCKER_CACHE   cache directory (see above)
#   GLASSBOX_BASE_IMAGE     image name to make (default debian:bookworm-slim)
# Needs root (debootstrap), debootstrap and docker.
set -euo pipefail

image=${GLASSBOX_BASE_IMAGE:-debian:bookworm-slim}
suite=bookworm
cache=${GLASSBOX_DOCKER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/glassbox/docker}
tarball="$cache/$suite-slim-rootfs.tar"

if docker image inspect "$image" >/dev/null 2>&1; then
  echo "base-image: $image present"
  exit 0
fi

# The mirror apt already uses here: deb822 .sources files first, then the
# one-line format; only Debian's main archive (not -security, not others).
find_mirror() {
  local f uri
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    uri=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i ~ /\/debian\/?$/) { print $i; exit } }' "$f")
    [ -n "$uri" ] && { echo "${uri%/}"; return; }
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -r "$f" ] || continue
    uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^https?:.*\/debian\/?$/) { print $i; exit } }' "$f")
    [ -n "$uri" ] && { echo "${uri%/}"; return; }
  done
  echo http://deb.debian.org/debian
}
mirror=${GLASSBOX_DEBIAN_MIRROR:-$(find_mirror)}

if [ ! -s "$tarball" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "base-image: debootstrap needs root" >&2
    exit 1
  fi
  command -v debootstrap >/dev/null || { echo "base-image: install debootstrap" >&2; exit 1; }
  mkdir -p "$cache/debs"
  root=$(mktemp -d "$cache/rootfs.XXXXXX")
  trap 'rm -rf "$root"' EXIT
  echo "base-image: debootstrap $suite from $mirror (a few minutes the first time)"
  debootstrap --variant=minbase --cache-dir="$cache/debs" "$suite" "$root" "$mirror" \
    >"$cache/debootstrap.log" 2>&1 || {
      echo "base-image: debootstrap failed, see $cache/debootstrap.log" >&2; exit 1; }

  # What makes the official image "slim": apt sources as the image ships
  # them, no documentation, man pages or locales installed by later apt
  # runs, and apt's caches cleaned after every install.
  rm -f "$root/etc/apt/sources.list"
  cat >"$root/etc/apt/sources.list.d/debian.sources" <<SRC
Types: deb
URIs: $mirror
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${mirror%/debian}/debian-security
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
CFG
  cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'CFG'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CFG
  echo 'APT::Install-Recommends "false";' >"$root/etc/apt/apt.conf.d/docker-no-recommends"
  find "$root/usr/share/doc" -mindepth 2 -not -name copyright -not -type d -delete 2>/dev/null || true
  rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* \
         "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
         "$root"/var/lib/apt/lists/* "$root"/var/log/*.log "$root"/tmp/*
  : >"$root/etc/hostname"
  tar --numeric-owner -C "$root" -cf "$tarball.part" .
  mv "$tarball.part" "$tarball"
  rm -rf "$root"
  trap - EXIT
fi

echo "base-image: docker import $tarball as $image"
docker import --change 'CMD ["bash"]' --change 'ENV LANG=C.UTF-8' \
  -m "debootstrap --variant=minbase $suite from $mirror (glassbox deploy/docker/base-image.sh)" \
  "$tarball" "$image" >/dev/null
echo "base-image: $image ready"
