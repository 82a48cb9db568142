#!/bin/sh
# One backup of the vendor-server database: `pg_dump --format=custom` to
# DIR/vendor-server-<UTC time>.dump (written to a .partial file first, so a half-written dump is never
# mistaken for a backup), then keeps only the newest BACKUP_KEEP dumps. POSIX sh: runs in the
# PostgreSQL image (docker-compose.prod.yml's `backup` service runs it on a schedule).
#
# Usage: scripts/backup.sh [DIR]        DIR defaults to $BACKUP_DIR, else ./backups
# Env:   DATABASE_URL (required), BACKUP_KEEP (default 14)
# Restore one with scripts/restore.sh.
set -eu
: "${DATABASE_URL:?set DATABASE_URL to the database to back up}"
dir="${1:-${BACKUP_DIR:-./backups}}"
keep="${BACKUP_KEEP:-14}"
case "$keep" in '' | *[!0-9]*) echo "backup: BACKUP_KEEP must be a number" >&2; exit 2 ;; esac
[ "$keep" -ge 1 ] || { echo "backup: BACKUP_KEEP must be at least 1" >&2; exit 2; }
mkdir -p "$dir"
file="$dir/vendor-server-$(date -u +%Y%m%dT%H%M%SZ).dump"
# --no-owner/--no-privileges: restorable as any role into any database.
pg_dump --format=custom --compress=6 --no-owner --no-privileges --dbname="$DATABASE_URL" --file="$file.partial"
mv "$file.partial" "$file"
echo "backup: wrote $file ($(wc -c <"$file") bytes)"
# Retention: the newest $keep dumps stay (names sort by time).
ls "$dir"/vendor-server-*.dump 2>/dev/null | sort -r | tail -n +"$((keep + 1))" | while read -r old; do
  rm -f "$old" && echo "backup: removed $old (keeping the newest $keep)"
done
