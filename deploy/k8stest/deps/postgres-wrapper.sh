#!/bin/sh
# deploy/k8stest: PostgreSQL with the pg_hba.conf of ConfigMap postgres-k8stest.
exec /usr/lib/postgresql/15/bin/postgres "$@" -c hba_file=/k8stest/pg_hba.conf
