#!/bin/bash
# First start of the compose PostgreSQL (an empty volume): a login role per service, each owning
# a schema of its own and nothing else; passwords from the services' secrets. Runs as the `apl`
# administrator. For a volume made before this script existed, run it by hand (docs/operations.md).
set -euo pipefail

for service in placements matching notifications; do
  password="$(cat "/run/secrets/${service}_db_password")"
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
       -v role="$service" -v password="$password" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'role', :'password')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec
SELECT format('ALTER ROLE %I PASSWORD %L', :'role', :'password') \gexec
SELECT format('CREATE SCHEMA IF NOT EXISTS %I AUTHORIZATION %I', :'role', :'role') \gexec
SELECT format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), :'role') \gexec
SELECT format('REVOKE CREATE ON SCHEMA public FROM %I', :'role') \gexec
SQL
done
