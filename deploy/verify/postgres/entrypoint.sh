set -e
mkdir -p "$PGDATA" /run/postgresql
chown -R postgres:postgres "$PGDATA" /run/postgresql
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    printf '%s' "$POSTGRES_PASSWORD" >/tmp/pw && chown postgres /tmp/pw
    su postgres -c "initdb -E UTF8 --locale=C.UTF-8 -D '$PGDATA' -U '$POSTGRES_USER' --pwfile=/tmp/pw -A scram-sha-256" >/dev/null
    rm /tmp/pw
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    echo "CREATE DATABASE \"$POSTGRES_DB\" OWNER \"$POSTGRES_USER\";" \
        | su postgres -c "postgres --single -D '$PGDATA' postgres" >/dev/null
fi
exec su postgres -c "exec postgres -D '$PGDATA' -c listen_addresses='*'"
