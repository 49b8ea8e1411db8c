#!/bin/sh
# Write the .env that docker-compose.yml reads: a random LAB_SHARED_SECRET (compose refuses to start
# without one) and the uid/gid JupyterLab runs as, so it can save into the bind-mounted notebooks/.
#
#   ./docker/make-env.sh [--force] [DIR]
#
# DIR defaults to the folder of docker-compose.yml. An existing .env is kept unless --force is given,
# since it may hold a secret a running lab already uses. LAB_UID/LAB_GID in the environment override
# the detected ids.
set -eu

usage() {
    echo "usage: $0 [--force] [DIR]" >&2
    exit 2
}

force=0
dir=
for arg in "$@"; do
    case $arg in
        --force) force=1 ;;
        -h | --help) usage ;;
        -*) echo "$0: unknown option $arg" >&2; usage ;;
        *) [ -z "$dir" ] || usage; dir=$arg ;;
    esac
done
[ -n "$dir" ] || dir=$(cd "$(dirname "$0")/.." && pwd)
[ -d "$dir" ] || { echo "$0: no such folder: $dir" >&2; exit 1; }
env_file=$dir/.env

if [ "$force" -eq 0 ] && { [ -e "$env_file" ] || [ -L "$env_file" ]; }; then
    echo "$0: $env_file exists; keeping it (use --force to replace it and its secret)" >&2
    exit 1
fi

secret=$(od -An -N32 -tx1 /dev/urandom 2>/dev/null | tr -d ' \n') || secret=
if [ "${#secret}" -ne 64 ]; then
    secret=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
fi
case $secret in
    *[!0-9a-f]*) echo "$0: could not generate a secret" >&2; exit 1 ;;
esac
[ "${#secret}" -eq 64 ] || { echo "$0: could not generate a secret" >&2; exit 1; }

# Under sudo, the user who owns the checkout is the one JupyterLab should run as.
if [ "$(id -u)" -eq 0 ] && [ -n "${SUDO_UID:-}" ]; then
    uid=${LAB_UID:-$SUDO_UID}
    gid=${LAB_GID:-${SUDO_GID:-$SUDO_UID}}
else
    uid=${LAB_UID:-$(id -u)}
    gid=${LAB_GID:-$(id -g)}
fi
for n in "$uid" "$gid"; do
    case $n in
        '' | *[!0-9]*) echo "$0: not a numeric uid/gid: '$n'" >&2; exit 1 ;;
    esac
done

if [ "$force" -eq 1 ]; then
    # Removed rather than truncated, and only once nothing above can fail: truncating would keep
    # the old file's mode, which may be looser than 0600.
    rm -f -- "$env_file"
fi
umask 077
# noclobber: if another run created the file since the check above, fail instead of overwriting it.
set -C
{
    echo "# Written by docker/make-env.sh. Keep it private: LAB_SHARED_SECRET signs every POST."
    echo "LAB_SHARED_SECRET=$secret"
    echo "LAB_UID=$uid"
    echo "LAB_GID=$gid"
} >"$env_file"
set +C

if [ "$(id -u)" -eq 0 ] && [ -n "${SUDO_UID:-}" ]; then
    # So `docker compose` run without sudo can still read it.
    chown "$SUDO_UID:${SUDO_GID:-$SUDO_UID}" "$env_file"
fi

echo "Wrote $env_file (JupyterLab runs as $uid:$gid). Next: docker compose up --build"
if [ "$uid" -eq 0 ]; then
    echo "$0: warning: LAB_UID is 0; JupyterLab refuses to run as root. Set LAB_UID/LAB_GID to the owner of notebooks/ and run again with --force." >&2
fi
