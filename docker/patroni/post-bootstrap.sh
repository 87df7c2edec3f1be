#!/bin/sh
# Patroni runs this once, on the node that initialises the cluster: Klaxon's role and database.
set -eu
password=${KLAXON_DB_PASSWORD:?set KLAXON_DB_PASSWORD}
psql -v ON_ERROR_STOP=1 -v password="$password" "$1" <<'SQL'
CREATE ROLE klaxon LOGIN PASSWORD :'password';
CREATE DATABASE klaxon OWNER klaxon;
SQL
