-- Change Tracking, as SQL Server documents it, on PostgreSQL.
--
-- Capture: statement-level triggers (transition tables) log each changed key of a tracked table
-- into _sim.ct_log with the writing transaction's id, and mark the transaction in _sim.ct_tx.
-- Versions: a deferred constraint trigger on _sim.ct_tx runs once per transaction at COMMIT; it
-- takes an advisory transaction lock (held until the commit is visible) and draws the next
-- version, so versions are strictly increasing in commit order. A rolled-back transaction leaves
-- nothing. CHANGE_TRACKING_CURRENT_VERSION() is the highest committed version a reader can see,
-- so a SNAPSHOT reader sees neither later versions nor later cleanup.
SET check_function_bodies = false;

CREATE TABLE _sim.ct_settings (enabled boolean NOT NULL DEFAULT false, retention_minutes int NOT NULL DEFAULT 2880,
    auto_cleanup boolean NOT NULL DEFAULT true, retention_text text NOT NULL DEFAULT '2 DAYS');
INSERT INTO _sim.ct_settings DEFAULT VALUES;
CREATE TABLE _sim.ct_tables (table_oid oid PRIMARY KEY, track_columns boolean NOT NULL, begin_version bigint NOT NULL,
    cleanup_version bigint NOT NULL, min_valid_version bigint NOT NULL, pk_columns text[] NOT NULL);
CREATE TABLE _sim.ct_tx (xid xid8 PRIMARY KEY, version bigint UNIQUE, commit_time timestamp, truncated oid[] NOT NULL DEFAULT '{}');
CREATE TABLE _sim.ct_log (seq bigserial PRIMARY KEY, xid xid8 NOT NULL, table_oid oid NOT NULL, op char(1) NOT NULL,
    pk jsonb NOT NULL, columns int[], context bytea);
CREATE INDEX ON _sim.ct_log (table_oid, xid);
CREATE INDEX ON _sim.ct_log (xid);
CREATE SEQUENCE _sim.ct_versions;

-- SQL Server-style errors raised by the simulator: '[number] message' (mapped by error.rs).
CREATE FUNCTION _sim.raise(number int, msg text) RETURNS void LANGUAGE plpgsql AS
$$ BEGIN RAISE EXCEPTION '[%] %', number, msg USING ERRCODE = 'P0001'; END $$;

CREATE FUNCTION _sim.ct_current_version() RETURNS bigint LANGUAGE sql STABLE AS $$
  SELECT CASE WHEN (SELECT enabled FROM _sim.ct_settings) THEN COALESCE((SELECT max(version) FROM _sim.ct_tx), 0) END $$;

CREATE FUNCTION _sim.ct_min_valid_version(t int) RETURNS bigint LANGUAGE sql STABLE AS
$$ SELECT min_valid_version FROM _sim.ct_tables WHERE table_oid = t::oid $$;

-- At COMMIT (deferred): the transaction's version, in commit order.
CREATE FUNCTION _sim.ct_assign_version() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE v bigint;
BEGIN
  PERFORM pg_advisory_xact_lock(7365471);
  v := nextval('_sim.ct_versions');
  UPDATE _sim.ct_tx SET version = v, commit_time = localtimestamp WHERE xid = NEW.xid RETURNING * INTO NEW;
  IF cardinality(NEW.truncated) > 0 THEN
    -- TRUNCATE is not tracked: readers with an older baseline must re-initialise.
    UPDATE _sim.ct_tables SET min_valid_version = v, cleanup_version = GREATEST(cleanup_version, v) WHERE table_oid = ANY (NEW.truncated);
    DELETE FROM _sim.ct_log WHERE table_oid = ANY (NEW.truncated) AND xid <> NEW.xid;
  END IF;
  RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER ct_commit AFTER INSERT ON _sim.ct_tx DEFERRABLE INITIALLY DEFERRED
  FOR EACH ROW EXECUTE FUNCTION _sim.ct_assign_version();

CREATE FUNCTION _sim.ct_mark_tx() RETURNS void LANGUAGE sql AS
$$ INSERT INTO _sim.ct_tx (xid) VALUES (pg_current_xact_id()) ON CONFLICT DO NOTHING $$;

CREATE FUNCTION _sim.ct_context() RETURNS bytea LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN COALESCE(current_setting('sim.ct_context', true), '') = '' THEN NULL ELSE decode(current_setting('sim.ct_context', true), 'hex') END $$;

-- The key of a row as jsonb (the primary key columns only).
CREATE FUNCTION _sim.ct_key(r jsonb, pk text[]) RETURNS jsonb LANGUAGE sql IMMUTABLE AS
$$ SELECT jsonb_object_agg(k, r -> k) FROM unnest(pk) AS k $$;

-- Capture triggers: TG_ARGV[0] = track columns ('t'/'f'), the rest = primary key column names.
CREATE FUNCTION _sim.ct_capture_insert() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE pk text[] := TG_ARGV[1:];
BEGIN
  PERFORM _sim.ct_mark_tx();
  INSERT INTO _sim.ct_log (xid, table_oid, op, pk, context)
  SELECT pg_current_xact_id(), TG_RELID, 'I', _sim.ct_key(to_jsonb(n), pk), _sim.ct_context() FROM new_rows n;
  RETURN NULL;
END $$;

CREATE FUNCTION _sim.ct_capture_delete() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE pk text[] := TG_ARGV[1:];
BEGIN
  PERFORM _sim.ct_mark_tx();
  INSERT INTO _sim.ct_log (xid, table_oid, op, pk, context)
  SELECT pg_current_xact_id(), TG_RELID, 'D', _sim.ct_key(to_jsonb(o), pk), _sim.ct_context() FROM old_rows o;
  RETURN NULL;
END $$;

-- An UPDATE: keys only in the old rows were deleted, keys only in the new rows inserted (a
-- primary key update is D + I), keys in both updated (with the changed column ids if tracked).
CREATE FUNCTION _sim.ct_capture_update() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE pk text[] := TG_ARGV[1:]; track boolean := TG_ARGV[0] = 't';
BEGIN
  PERFORM _sim.ct_mark_tx();
  INSERT INTO _sim.ct_log (xid, table_oid, op, pk, columns, context)
  SELECT pg_current_xact_id(), TG_RELID,
         CASE WHEN o.k IS NULL THEN 'I' WHEN n.k IS NULL THEN 'D' ELSE 'U' END,
         COALESCE(n.k, o.k),
         CASE WHEN track AND o.k IS NOT NULL AND n.k IS NOT NULL THEN
           ARRAY(SELECT a.attnum::int FROM jsonb_each(n.r) e JOIN pg_attribute a ON a.attrelid = TG_RELID AND a.attname = e.key
                 WHERE e.value IS DISTINCT FROM (o.r -> e.key) ORDER BY a.attnum) END,
         _sim.ct_context()
  FROM (SELECT _sim.ct_key(to_jsonb(x), pk) AS k, to_jsonb(x) AS r FROM old_rows x) o
  FULL JOIN (SELECT _sim.ct_key(to_jsonb(x), pk) AS k, to_jsonb(x) AS r FROM new_rows x) n ON n.k = o.k;
  RETURN NULL;
END $$;

CREATE FUNCTION _sim.ct_capture_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM _sim.ct_mark_tx();
  UPDATE _sim.ct_tx SET truncated = array_append(truncated, TG_RELID) WHERE xid = pg_current_xact_id();
  RETURN NULL;
END $$;

-- ALTER TABLE t ENABLE CHANGE_TRACKING [WITH (TRACK_COLUMNS_UPDATED = ON)].
CREATE FUNCTION _sim.ct_enable_table(t oid, track boolean, tname text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE pk text[]; args text; v bigint;
BEGIN
  IF NOT (SELECT enabled FROM _sim.ct_settings) THEN
    PERFORM _sim.raise(4996, format('Change tracking must be enabled on database ''%s'' before it can be enabled on table ''%s''.', current_setting('sim.database', true), tname));
  END IF;
  IF EXISTS (SELECT 1 FROM _sim.ct_tables WHERE table_oid = t) THEN
    PERFORM _sim.raise(4996, format('Change tracking is already enabled for table ''%s''.', tname));
  END IF;
  SELECT array_agg(a.attname ORDER BY x.n) INTO pk
    FROM pg_constraint k CROSS JOIN LATERAL unnest(k.conkey) WITH ORDINALITY AS x(attnum, n)
    JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = x.attnum
   WHERE k.conrelid = t AND k.contype = 'p';
  IF pk IS NULL THEN
    PERFORM _sim.raise(4997, format('Cannot enable change tracking on table ''%s''. Change tracking requires a primary key on the table. Create a primary key on the table before enabling change tracking.', tname));
  END IF;
  v := _sim.ct_current_version();
  INSERT INTO _sim.ct_tables VALUES (t, track, v, v, v, pk);
  args := quote_literal(CASE WHEN track THEN 't' ELSE 'f' END) || ', ' || (SELECT string_agg(quote_literal(c), ', ') FROM unnest(pk) c);
  EXECUTE format('CREATE TRIGGER _sim_ct_i AFTER INSERT ON %s REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION _sim.ct_capture_insert(%s)', t::regclass, args);
  EXECUTE format('CREATE TRIGGER _sim_ct_u AFTER UPDATE ON %s REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION _sim.ct_capture_update(%s)', t::regclass, args);
  EXECUTE format('CREATE TRIGGER _sim_ct_d AFTER DELETE ON %s REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION _sim.ct_capture_delete(%s)', t::regclass, args);
  EXECUTE format('CREATE TRIGGER _sim_ct_t AFTER TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION _sim.ct_capture_truncate()', t::regclass);
END $$;

CREATE FUNCTION _sim.ct_disable_table(t oid, tname text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM _sim.ct_tables WHERE table_oid = t) THEN
    PERFORM _sim.raise(4998, format('Change tracking is not enabled on table ''%s''.', tname));
  END IF;
  EXECUTE format('DROP TRIGGER _sim_ct_i ON %1$s; DROP TRIGGER _sim_ct_u ON %1$s; DROP TRIGGER _sim_ct_d ON %1$s; DROP TRIGGER _sim_ct_t ON %1$s', t::regclass);
  DELETE FROM _sim.ct_tables WHERE table_oid = t;
  DELETE FROM _sim.ct_log WHERE table_oid = t;
END $$;

-- ALTER DATABASE ... SET CHANGE_TRACKING = ON (...) | OFF.
CREATE FUNCTION _sim.ct_set_database(enable boolean, retention_minutes int, retention_text text, auto boolean) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF enable THEN
    UPDATE _sim.ct_settings SET enabled = true, retention_minutes = COALESCE(ct_set_database.retention_minutes, ct_settings.retention_minutes),
      retention_text = COALESCE(ct_set_database.retention_text, ct_settings.retention_text), auto_cleanup = COALESCE(auto, ct_settings.auto_cleanup);
  ELSE
    IF EXISTS (SELECT 1 FROM _sim.ct_tables) THEN
      PERFORM _sim.raise(22115, 'Change tracking is enabled for one or more tables in database ''' || current_setting('sim.database', true) || '''. Disable change tracking on each table before disabling it for the database.');
    END IF;
    UPDATE _sim.ct_settings SET enabled = false;
  END IF;
END $$;

-- Cleanup up to a version: changes at or below it are gone; baselines below it become invalid.
-- Idempotent. The newest transaction row stays, so the current version never moves back.
CREATE FUNCTION _sim.ct_cleanup(up_to bigint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM _sim.ct_log l USING _sim.ct_tx t WHERE t.xid = l.xid AND t.version <= up_to;
  DELETE FROM _sim.ct_tx WHERE version <= up_to AND version < (SELECT max(version) FROM _sim.ct_tx);
  UPDATE _sim.ct_tables SET cleanup_version = GREATEST(cleanup_version, up_to), min_valid_version = GREATEST(min_valid_version, up_to);
END $$;

-- Cleanup honouring the retention (what SQL Server's background task does).
CREATE FUNCTION _sim.ct_auto_cleanup() RETURNS void LANGUAGE plpgsql AS $$
DECLARE s _sim.ct_settings; v bigint;
BEGIN
  SELECT * INTO s FROM _sim.ct_settings;
  IF NOT s.enabled OR NOT s.auto_cleanup THEN RETURN; END IF;
  SELECT max(version) INTO v FROM _sim.ct_tx WHERE commit_time < localtimestamp - make_interval(mins => s.retention_minutes);
  IF v IS NOT NULL THEN PERFORM _sim.ct_cleanup(v); END IF;
END $$;

-- CHANGETABLE(CHANGES t, since): one row per key changed after `since`, with the net operation
-- relative to that baseline (insert then update = I; delete then re-insert = U; insert then
-- delete = D, which consumers treat as a no-op for a key they never saw).
CREATE FUNCTION _sim.ct_changes(t int, since bigint)
RETURNS TABLE (version bigint, creation_version bigint, op text, columns bytea, context bytea, pk jsonb) LANGUAGE sql STABLE AS $$
  WITH c AS (
    SELECT l.pk, l.op, x.version, l.seq, l.columns, l.context
    FROM _sim.ct_log l JOIN _sim.ct_tx x ON x.xid = l.xid
    WHERE l.table_oid = t::oid AND x.version IS NOT NULL AND (since IS NULL OR x.version > since)
  ), k AS (
    SELECT pk,
           max(version) AS version,
           max(version) FILTER (WHERE op = 'I') AS creation_version,
           (array_agg(op ORDER BY version, seq))[1] AS first_op,
           (array_agg(op ORDER BY version DESC, seq DESC))[1] AS last_op,
           (array_agg(context ORDER BY version DESC, seq DESC))[1] AS context,
           bool_or(op = 'U' AND columns IS NULL) AS all_columns
    FROM c GROUP BY pk
  )
  SELECT k.version,
         CASE WHEN k.first_op = 'I' THEN k.creation_version END,
         CASE WHEN k.last_op = 'D' THEN 'D' WHEN k.first_op = 'I' THEN 'I' ELSE 'U' END,
         CASE WHEN k.last_op <> 'D' AND k.first_op <> 'I' AND NOT k.all_columns THEN
           (SELECT string_agg(int4send(d.x), ''::bytea ORDER BY d.x) FROM (SELECT DISTINCT unnest(c.columns) AS x FROM c WHERE c.pk = k.pk) d) END,
         k.context, k.pk
  FROM k $$;

-- CHANGETABLE(VERSION t, (pk), (values)): the last change version of one key.
CREATE FUNCTION _sim.ct_key_version(t int, key jsonb, OUT version bigint, OUT context bytea) LANGUAGE sql STABLE AS $$
  SELECT x.version, l.context FROM _sim.ct_log l JOIN _sim.ct_tx x ON x.xid = l.xid
  WHERE l.table_oid = t::oid AND l.pk = key AND x.version IS NOT NULL ORDER BY x.version DESC, l.seq DESC LIMIT 1 $$;

CREATE FUNCTION _sim.ct_column_in_mask(column_id int, mask bytea) RETURNS int LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN mask IS NULL THEN 1 ELSE (EXISTS (
    SELECT 1 FROM generate_series(0, length(mask) / 4 - 1) i
    WHERE (get_byte(mask, i * 4) << 24) | (get_byte(mask, i * 4 + 1) << 16) | (get_byte(mask, i * 4 + 2) << 8) | get_byte(mask, i * 4 + 3) = column_id))::int END $$;

CREATE VIEW sys.change_tracking_databases AS
  SELECT (SELECT database_id FROM _sim.databases WHERE name = current_setting('sim.database', true)) AS database_id,
         auto_cleanup AS is_auto_cleanup_on, split_part(retention_text, ' ', 1)::int AS retention_period,
         (CASE split_part(retention_text, ' ', 2) WHEN 'MINUTES' THEN 1 WHEN 'HOURS' THEN 2 ELSE 3 END)::smallint AS retention_period_units,
         split_part(retention_text, ' ', 2)::varchar(60) AS retention_period_units_desc
  FROM _sim.ct_settings WHERE enabled;

CREATE VIEW sys.change_tracking_tables AS
  SELECT table_oid::int AS object_id, track_columns AS is_track_columns_updated_on, begin_version, cleanup_version, min_valid_version
  FROM _sim.ct_tables;

CREATE VIEW sys.dm_tran_commit_table AS
  SELECT version AS commit_ts, ('x' || lpad(md5(xid::text), 16, '0'))::bit(64)::bigint AS xdes_id, 0::bigint AS commit_lbn,
         version AS commit_csn, commit_time
  FROM _sim.ct_tx WHERE version IS NOT NULL;

INSERT INTO _sim.columns (table_oid, attnum, name, type)
SELECT c.oid, a.attnum, a.attname,
  CASE ty.typname WHEN 'bool' THEN 'bit' WHEN 'int2' THEN 'smallint' WHEN 'int4' THEN 'int' WHEN 'int8' THEN 'bigint'
    WHEN 'varchar' THEN 'nvarchar(60)' WHEN 'timestamp' THEN 'datetime' ELSE 'nvarchar(max)' END
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 JOIN pg_type ty ON ty.oid = a.atttypid
WHERE n.nspname = 'sys' AND c.relname IN ('change_tracking_databases', 'change_tracking_tables', 'dm_tran_commit_table');
UPDATE _sim.columns SET type = 'tinyint' WHERE name = 'retention_period_units'
  AND table_oid = 'sys.change_tracking_databases'::regclass;
