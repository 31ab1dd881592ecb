-- Change Data Capture, as SQL Server documents it, on PostgreSQL.
--
-- Capture: statement-level triggers log each changed row image of a CDC-enabled table into
-- _sim.cdc_log with the writing transaction's id. At COMMIT a deferred trigger gives the
-- transaction its commit LSN, under the same advisory lock as Change Tracking's versions, so
-- LSNs follow commit order. The capture job (_sim.cdc_capture, run by the server every polling
-- interval, like SQL Server Agent's capture job) moves committed changes into each capture
-- instance's change table cdc.<ci>_CT and cdc.lsn_time_mapping. LSNs are 10 bytes, compared as
-- unsigned big-endian bytes.
SET check_function_bodies = false;

CREATE TABLE _sim.cdc_tx (xid xid8 PRIMARY KEY, lsn bytea UNIQUE, begin_time timestamp(3) NOT NULL DEFAULT localtimestamp(3), end_time timestamp(3));
CREATE TABLE _sim.cdc_log (seq bigserial PRIMARY KEY, xid xid8 NOT NULL, table_oid oid NOT NULL, stmt bigint NOT NULL,
    op int NOT NULL, row jsonb NOT NULL, changed text[]);
CREATE INDEX ON _sim.cdc_log (xid);
CREATE TABLE _sim.cdc_state (last_lsn bytea NOT NULL, last_idle timestamp NOT NULL DEFAULT localtimestamp);
INSERT INTO _sim.cdc_state VALUES ('\x00000000000000000000', localtimestamp);
CREATE SEQUENCE _sim.cdc_lsn_seq START WITH 1000;
CREATE SEQUENCE _sim.cdc_stmt_seq;

CREATE FUNCTION _sim.cdc_next_lsn() RETURNS bytea LANGUAGE sql AS $$ SELECT '\x0000'::bytea || int8send(nextval('_sim.cdc_lsn_seq')) $$;

CREATE FUNCTION _sim.cdc_assign_lsn() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(7365471);
  UPDATE _sim.cdc_tx SET lsn = _sim.cdc_next_lsn(), end_time = localtimestamp(3) WHERE xid = NEW.xid;
  RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER cdc_commit AFTER INSERT ON _sim.cdc_tx DEFERRABLE INITIALLY DEFERRED
  FOR EACH ROW EXECUTE FUNCTION _sim.cdc_assign_lsn();

-- Capture triggers: TG_ARGV = the primary key column names (may be empty).
CREATE FUNCTION _sim.cdc_capture_rows() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE pk text[] := TG_ARGV; st bigint := nextval('_sim.cdc_stmt_seq'); lim int; big bigint;
BEGIN
  -- 'max text repl size': the largest LOB value one INSERT or UPDATE may write into a captured
  -- column (error 7139; -1 is no limit).
  lim := (SELECT max_text_repl_size FROM _sim.cdc_state);
  IF TG_OP <> 'DELETE' AND lim >= 0 AND EXISTS (SELECT 1 FROM _sim.cdc_lob_columns(TG_RELID)) THEN
    SELECT max(_sim.cdc_lob_bytes(c.type, e.value)) INTO big
      FROM new_rows n CROSS JOIN LATERAL jsonb_each(to_jsonb(n)) e JOIN _sim.cdc_lob_columns(TG_RELID) c ON c.column_name = e.key;
    IF big > lim THEN
      PERFORM _sim.raise(7139, format('Length of LOB data (%s) to be replicated exceeds configured maximum %s. Use the stored procedure sp_configure to increase the configured maximum value for max text repl size option, which defaults to 65536. A configured value of -1 indicates no limit, other that the limit imposed by the data type.', big, lim));
    END IF;
  END IF;
  INSERT INTO _sim.cdc_tx (xid) VALUES (pg_current_xact_id()) ON CONFLICT DO NOTHING;
  IF TG_OP = 'INSERT' THEN
    INSERT INTO _sim.cdc_log (xid, table_oid, stmt, op, row) SELECT pg_current_xact_id(), TG_RELID, st, 2, to_jsonb(n) FROM new_rows n;
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO _sim.cdc_log (xid, table_oid, stmt, op, row) SELECT pg_current_xact_id(), TG_RELID, st, 1, to_jsonb(o) FROM old_rows o;
  ELSIF cardinality(pk) = 0 THEN
    -- Without a key old and new images cannot be paired: a delete and an insert.
    INSERT INTO _sim.cdc_log (xid, table_oid, stmt, op, row)
    SELECT pg_current_xact_id(), TG_RELID, st, 1, to_jsonb(o) FROM old_rows o
    UNION ALL SELECT pg_current_xact_id(), TG_RELID, st, 2, to_jsonb(n) FROM new_rows n;
  ELSE
    -- Paired by key: before image (3) then after image (4); a changed key is a delete + insert.
    INSERT INTO _sim.cdc_log (xid, table_oid, stmt, op, row, changed)
    SELECT pg_current_xact_id(), TG_RELID, st, x.op, x.row, x.changed FROM (
      SELECT o.k, 0 AS ord, CASE WHEN n.k IS NULL THEN 1 ELSE 3 END AS op, o.r AS row,
             CASE WHEN n.k IS NOT NULL THEN ARRAY(SELECT e.key FROM jsonb_each(n.r) e WHERE e.value IS DISTINCT FROM (o.r -> e.key)) END AS changed
        FROM (SELECT _sim.ct_key(to_jsonb(x), pk) AS k, to_jsonb(x) AS r FROM old_rows x) o
        LEFT JOIN (SELECT _sim.ct_key(to_jsonb(x), pk) AS k, to_jsonb(x) AS r FROM new_rows x) n ON n.k = o.k
      UNION ALL
      SELECT n.k, 1, CASE WHEN o.k IS NULL THEN 2 ELSE 4 END, n.r,
             CASE WHEN o.k IS NOT NULL THEN ARRAY(SELECT e.key FROM jsonb_each(n.r) e WHERE e.value IS DISTINCT FROM (o.r -> e.key)) END
        FROM (SELECT _sim.ct_key(to_jsonb(x), pk) AS k, to_jsonb(x) AS r FROM new_rows x) n
        LEFT JOIN (SELECT _sim.ct_key(to_jsonb(x), pk) AS k, to_jsonb(x) AS r FROM old_rows x) o ON o.k = n.k
    ) x ORDER BY x.k::text, x.ord;
  END IF;
  RETURN NULL;
END $$;

-- The LOB columns of a table (PostgreSQL names) with their declared types.
CREATE FUNCTION _sim.cdc_lob_columns(t oid) RETURNS TABLE (column_name text, type text) LANGUAGE sql STABLE AS $$
  SELECT a.attname::text, c.type FROM _sim.columns c JOIN pg_attribute a ON a.attrelid = c.table_oid AND a.attnum = c.attnum
   WHERE c.table_oid = t AND c.type IN ('text', 'ntext', 'image', 'varchar(max)', 'nvarchar(max)', 'varbinary(max)', 'xml') $$;

-- DATALENGTH of a LOB value in its row's JSON form (bytea as \x hex, national text as UTF-16).
CREATE FUNCTION _sim.cdc_lob_bytes(type text, v jsonb) RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN v IS NULL OR jsonb_typeof(v) = 'null' THEN 0
    WHEN type IN ('image', 'varbinary(max)') THEN (length(v #>> '{}') - 2) / 2
    WHEN type IN ('ntext', 'nvarchar(max)', 'xml') THEN 2 * char_length(v #>> '{}')
    ELSE octet_length(v #>> '{}') END $$;

CREATE FUNCTION _sim.cdc_refuse_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM _sim.raise(4711, format('Cannot truncate table ''%s'' because it is published for replication or enabled for Change Data Capture.', _sim.nm(TG_RELID, TG_TABLE_NAME::name)));
  RETURN NULL;
END $$;

-- The update mask: one bit per captured column (column ordinal 1 = lowest bit of the last byte).
CREATE FUNCTION _sim.cdc_mask(ordinals int[], ncols int) RETURNS bytea LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE len int := GREATEST((ncols + 7) / 8, 1); b bytea := '\x'::bytea; i int; o int;
BEGIN
  FOR i IN 1..len LOOP b := b || '\x00'::bytea; END LOOP;
  FOREACH o IN ARRAY COALESCE(ordinals, '{}') LOOP
    b := set_byte(b, len - 1 - (o - 1) / 8, get_byte(b, len - 1 - (o - 1) / 8) | (1 << ((o - 1) % 8)));
  END LOOP;
  RETURN b;
END $$;

CREATE FUNCTION _sim.cdc_is_bit_set(pos int, mask bytea) RETURNS smallint LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN mask IS NULL OR pos < 1 OR (pos - 1) / 8 >= length(mask) THEN 0
    ELSE ((get_byte(mask, length(mask) - 1 - (pos - 1) / 8) >> ((pos - 1) % 8)) & 1) END::smallint $$;

CREATE FUNCTION _sim.cdc_max_lsn() RETURNS bytea LANGUAGE sql STABLE AS $$ SELECT start_lsn FROM cdc.lsn_time_mapping ORDER BY start_lsn DESC LIMIT 1 $$;
CREATE FUNCTION _sim.cdc_min_lsn(ci text) RETURNS bytea LANGUAGE sql STABLE AS $$
  SELECT COALESCE((SELECT start_lsn FROM cdc.change_tables WHERE capture_instance = ci), '\x00000000000000000000'::bytea) $$;
CREATE FUNCTION _sim.cdc_increment_lsn(l bytea) RETURNS bytea LANGUAGE sql IMMUTABLE AS
$$ SELECT substr(l, 1, 2) || int8send(('x' || encode(substr(l, 3, 8), 'hex'))::bit(64)::bigint + 1) $$;
CREATE FUNCTION _sim.cdc_decrement_lsn(l bytea) RETURNS bytea LANGUAGE sql IMMUTABLE AS
$$ SELECT substr(l, 1, 2) || int8send(('x' || encode(substr(l, 3, 8), 'hex'))::bit(64)::bigint - 1) $$;
CREATE FUNCTION _sim.cdc_map_lsn_to_time(l bytea) RETURNS timestamp(3) LANGUAGE sql STABLE AS
$$ SELECT tran_end_time FROM cdc.lsn_time_mapping WHERE start_lsn <= l ORDER BY start_lsn DESC LIMIT 1 $$;
-- sys.fn_cdc_map_time_to_lsn: the LSN whose tran_end_time relates to t as asked; NULL when none.
CREATE FUNCTION _sim.cdc_map_time_to_lsn(op text, t timestamp) RETURNS bytea LANGUAGE sql STABLE AS $$
  SELECT CASE lower(op)
    WHEN 'largest less than' THEN (SELECT start_lsn FROM cdc.lsn_time_mapping WHERE tran_end_time < t ORDER BY start_lsn DESC LIMIT 1)
    WHEN 'largest less than or equal' THEN (SELECT start_lsn FROM cdc.lsn_time_mapping WHERE tran_end_time <= t ORDER BY start_lsn DESC LIMIT 1)
    WHEN 'smallest greater than' THEN (SELECT start_lsn FROM cdc.lsn_time_mapping WHERE tran_end_time > t ORDER BY start_lsn ASC LIMIT 1)
    WHEN 'smallest greater than or equal' THEN (SELECT start_lsn FROM cdc.lsn_time_mapping WHERE tran_end_time >= t ORDER BY start_lsn ASC LIMIT 1)
    ELSE (SELECT NULL::bytea FROM _sim.raise(22986, 'An invalid value was specified for the relational operator argument of sys.fn_cdc_map_time_to_lsn.'))
  END $$;

-- fn_cdc_get_all_changes / get_net_changes refuse a window outside the instance's valid range
-- with SQL Server's (famously unhelpful) error 313.
CREATE FUNCTION _sim.cdc_check_range(ci text, from_lsn bytea, to_lsn bytea) RETURNS boolean LANGUAGE plpgsql STABLE AS $$
BEGIN
  IF from_lsn IS NULL OR to_lsn IS NULL OR from_lsn > to_lsn OR from_lsn < _sim.cdc_min_lsn(ci) OR to_lsn > COALESCE(_sim.cdc_max_lsn(), '\x'::bytea) THEN
    PERFORM _sim.raise(313, format('An insufficient number of arguments were supplied for the procedure or function cdc.fn_cdc_get_all_changes_%s.', ci));
  END IF;
  RETURN true;
END $$;

-- The capture job: moves committed changes, in LSN order, into every active capture instance.
CREATE FUNCTION _sim.cdc_capture() RETURNS int LANGUAGE plpgsql AS $$
DECLARE last bytea; hi bytea; ci record; n int := 0; k int;
BEGIN
  SELECT last_lsn INTO last FROM _sim.cdc_state FOR UPDATE;
  SELECT lsn INTO hi FROM _sim.cdc_tx WHERE lsn > last ORDER BY lsn DESC LIMIT 1;
  IF hi IS NULL THEN
    -- Nothing to capture: an idle marker now and then keeps the max LSN moving.
    IF (SELECT last_idle FROM _sim.cdc_state) < localtimestamp - interval '5 seconds' AND EXISTS (SELECT 1 FROM cdc.change_tables) THEN
      INSERT INTO cdc.lsn_time_mapping VALUES (_sim.cdc_next_lsn(), localtimestamp(3), localtimestamp(3), '\x00'::bytea);
      UPDATE _sim.cdc_state SET last_idle = localtimestamp;
    END IF;
    RETURN 0;
  END IF;
  -- What SQL Server does not store in a change table (the cdc.<capture_instance>_CT page):
  -- computed columns are always NULL; text, ntext and image are NULL in deletes (1) and update
  -- before-images (3); the (max) types (and xml) are NULL in before-images unless the column
  -- changed.
  FOR ci IN SELECT c.capture_instance, c.source_object_id, c.object_id, c.start_lsn,
                   (SELECT count(*) FROM cdc.captured_columns cc WHERE cc.object_id = c.object_id) AS ncols,
                   ARRAY(SELECT lower(cc.column_name) FROM cdc.captured_columns cc WHERE cc.object_id = c.object_id AND cc.is_computed) AS computed,
                   ARRAY(SELECT l.column_name FROM _sim.cdc_lob_columns(c.source_object_id::oid) l WHERE l.type IN ('text', 'ntext', 'image')) AS legacy_lobs,
                   ARRAY(SELECT l.column_name FROM _sim.cdc_lob_columns(c.source_object_id::oid) l WHERE l.type NOT IN ('text', 'ntext', 'image')) AS max_lobs
            FROM cdc.change_tables c LOOP
    EXECUTE format(
      'INSERT INTO %1$s SELECT r.* FROM ('
      '  SELECT l.*, t.lsn, dense_rank() OVER (PARTITION BY l.xid ORDER BY l.stmt) AS cmd FROM _sim.cdc_log l JOIN _sim.cdc_tx t ON t.xid = l.xid'
      '  WHERE l.table_oid = $1 AND t.lsn > $2 AND t.lsn <= $3 AND t.lsn > $6) l, '
      'LATERAL jsonb_populate_record(NULL::%1$s, (l.row - $7 '
      '  - (CASE WHEN l.op IN (1, 3) THEN $8 ELSE ''{}''::text[] END) '
      '  - (CASE WHEN l.op = 3 THEN ARRAY(SELECT x FROM unnest($9) x WHERE x <> ALL (COALESCE(l.changed, ''{}''))) ELSE ''{}''::text[] END)) '
      '|| jsonb_build_object(''__$start_lsn'', l.lsn, ''__$seqval'', ''\x0000''::bytea || int8send(CASE WHEN l.op = 4 THEN l.seq - 1 ELSE l.seq END), '
      '''__$operation'', l.op, ''__$command_id'', l.cmd, ''__$update_mask'', '
      '_sim.cdc_mask(CASE WHEN l.op IN (3, 4) THEN ARRAY(SELECT cc.column_ordinal FROM _sim.cdc_columns_by_name($4) cc WHERE cc.column_name = ANY (l.changed)) '
      'ELSE ARRAY(SELECT generate_series(1, $5::int)) END, $5::int))) r '
      'ORDER BY l.lsn, l.seq',
      ci.object_id::regclass)
    USING ci.source_object_id::oid, last, hi, ci.object_id, ci.ncols, ci.start_lsn, ci.computed, ci.legacy_lobs, ci.max_lobs;
    GET DIAGNOSTICS k = ROW_COUNT;
    n := n + k;
  END LOOP;
  INSERT INTO cdc.lsn_time_mapping SELECT lsn, begin_time, end_time, ('\x' || lpad(to_hex(xid::text::bigint), 20, '0'))::bytea FROM _sim.cdc_tx WHERE lsn > last AND lsn <= hi;
  DELETE FROM _sim.cdc_log l USING _sim.cdc_tx t WHERE t.xid = l.xid AND t.lsn <= hi;
  DELETE FROM _sim.cdc_tx WHERE lsn <= hi;
  UPDATE _sim.cdc_state SET last_lsn = hi;
  RETURN n;
END $$;

CREATE FUNCTION _sim.cdc_columns_by_name(ct_oid int) RETURNS TABLE (column_name text, column_ordinal int) LANGUAGE sql STABLE AS
$$ SELECT lower(column_name), column_ordinal FROM cdc.captured_columns WHERE object_id = ct_oid $$;

-- sys.sp_cdc_enable_db: the cdc schema and its catalog tables.
CREATE FUNCTION _sim.cdc_enable_db() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'cdc') THEN RETURN; END IF;
  CREATE SCHEMA cdc;
  CREATE TABLE cdc.change_tables (object_id int PRIMARY KEY, version int NOT NULL DEFAULT 0, source_object_id int NOT NULL,
      capture_instance varchar(128) NOT NULL UNIQUE, start_lsn bytea, end_lsn bytea, supports_net_changes boolean NOT NULL,
      has_drop_pending boolean, role_name varchar(128), index_name varchar(128), filegroup_name varchar(128),
      create_date timestamp(3) NOT NULL DEFAULT localtimestamp(3), partition_switch boolean NOT NULL DEFAULT false);
  CREATE TABLE cdc.captured_columns (object_id int NOT NULL, column_name varchar(128) NOT NULL, column_id int, column_type varchar(128) NOT NULL,
      column_ordinal int NOT NULL, is_computed boolean NOT NULL DEFAULT false, masking_function varchar(4000));
  CREATE TABLE cdc.lsn_time_mapping (start_lsn bytea PRIMARY KEY, tran_begin_time timestamp(3), tran_end_time timestamp(3), tran_id bytea,
      tran_begin_lsn bytea);
  CREATE TABLE cdc.ddl_history (source_object_id int, object_id int, required_column_update boolean, ddl_command varchar(4000), ddl_lsn bytea, ddl_time timestamp(3));
  CREATE TABLE cdc.index_columns (object_id int, column_name varchar(128), index_ordinal smallint, column_id int);
  INSERT INTO _sim.names SELECT oid, 'cdc' FROM pg_namespace WHERE nspname = 'cdc';
  -- Declared types of the catalog tables' columns.
  INSERT INTO _sim.columns (table_oid, attnum, name, type)
  SELECT c.oid, a.attnum, a.attname,
    CASE ty.typname WHEN 'bytea' THEN CASE WHEN a.attname = 'tran_id' THEN 'varbinary(10)' ELSE 'binary(10)' END WHEN 'bool' THEN 'bit'
      WHEN 'int4' THEN 'int' WHEN 'int2' THEN 'smallint' WHEN 'timestamp' THEN 'datetime' WHEN 'varchar' THEN 'nvarchar(' || (a.atttypmod - 4) || ')'
      ELSE 'nvarchar(max)' END
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'cdc'
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 JOIN pg_type ty ON ty.oid = a.atttypid
  WHERE c.relkind = 'r';
  UPDATE _sim.columns SET type = 'sysname' WHERE table_oid = 'cdc.change_tables'::regclass AND name IN ('capture_instance', 'role_name', 'index_name', 'filegroup_name');
  UPDATE _sim.databases SET is_cdc_enabled = true WHERE name = current_setting('sim.database', true);
END $$;

CREATE FUNCTION _sim.cdc_disable_db() RETURNS void LANGUAGE plpgsql AS $$
DECLARE r record;
BEGIN
  FOR r IN SELECT source_object_id FROM cdc.change_tables LOOP
    PERFORM _sim.cdc_disable_table(r.source_object_id, 'all');
  END LOOP;
  DELETE FROM _sim.columns WHERE table_oid IN (SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'cdc');
  DROP SCHEMA IF EXISTS cdc CASCADE;
  UPDATE _sim.databases SET is_cdc_enabled = false WHERE name = current_setting('sim.database', true);
END $$;

-- sys.sp_cdc_enable_table. `columns` NULL = every column.
CREATE FUNCTION _sim.cdc_enable_table(src oid, src_name text, ci text, role text, net boolean, columns text[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE ct_name text := ci || '_CT'; ct_oid oid; defs text; pk text[]; pk_name text; missing text;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'cdc') THEN
    PERFORM _sim.raise(22901, format('The database ''%s'' is not enabled for Change Data Capture. Ensure that the correct database context is set and retry the operation.', current_setting('sim.database', true)));
  END IF;
  IF (SELECT count(*) FROM cdc.change_tables WHERE source_object_id = src::int) >= 2 THEN
    PERFORM _sim.raise(22962, format('Two capture instances already exist for source table ''%s''. A table can have at most two capture instances.', src_name));
  END IF;
  IF EXISTS (SELECT 1 FROM cdc.change_tables WHERE capture_instance = ci) THEN
    PERFORM _sim.raise(22926, format('Could not create a capture instance because the capture instance name ''%s'' already exists in the current database.', ci));
  END IF;
  SELECT array_agg(a.attname ORDER BY x.n), min(k.conname) INTO pk, pk_name
    FROM pg_constraint k CROSS JOIN LATERAL unnest(k.conkey) WITH ORDINALITY AS x(attnum, n)
    JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = x.attnum WHERE k.conrelid = src AND k.contype = 'p';
  IF net AND pk IS NULL THEN
    PERFORM _sim.raise(22939, format('The parameter @supports_net_changes is set to 1, but the source table ''%s'' does not have a primary key defined and no alternate unique index has been specified.', src_name));
  END IF;
  SELECT string_agg(c, ', ') INTO missing FROM unnest(columns) c
   WHERE NOT EXISTS (SELECT 1 FROM _sim.columns sc WHERE sc.table_oid = src AND lower(sc.name) = lower(btrim(c)));
  IF missing IS NOT NULL THEN
    PERFORM _sim.raise(22924, format('Could not find the columns %s in the source table ''%s''.', missing, src_name));
  END IF;
  SELECT string_agg(format('%I %s', lower(sc.name), format_type(a.atttypid, a.atttypmod)), ', ' ORDER BY sc.attnum) INTO defs
    FROM _sim.columns sc JOIN pg_attribute a ON a.attrelid = sc.table_oid AND a.attnum = sc.attnum AND NOT a.attisdropped
   WHERE sc.table_oid = src AND (columns IS NULL OR lower(sc.name) = ANY (SELECT lower(btrim(c)) FROM unnest(columns) c));
  EXECUTE format('CREATE TABLE cdc.%I ("__$start_lsn" bytea NOT NULL, "__$end_lsn" bytea, "__$seqval" bytea NOT NULL, "__$operation" int NOT NULL, '
                 '"__$update_mask" bytea, %s, "__$command_id" int)', lower(ct_name), defs);
  ct_oid := format('cdc.%I', lower(ct_name))::regclass;
  EXECUTE format('CREATE INDEX ON cdc.%I ("__$start_lsn", "__$command_id", "__$seqval", "__$operation")', lower(ct_name));
  INSERT INTO _sim.tables (oid) VALUES (ct_oid);
  INSERT INTO _sim.names VALUES (ct_oid, ct_name);
  INSERT INTO _sim.columns (table_oid, attnum, name, type, system_type_id, user_type_id, max_length, precision, scale)
  SELECT ct_oid, a.attnum, COALESCE(sc.name, a.attname),
         COALESCE(sc.type, CASE a.attname WHEN '__$operation' THEN 'int' WHEN '__$command_id' THEN 'int' WHEN '__$update_mask' THEN 'varbinary(128)' ELSE 'binary(10)' END),
         COALESCE(sc.system_type_id, CASE WHEN a.attname IN ('__$operation', '__$command_id') THEN 56 WHEN a.attname = '__$update_mask' THEN 165 ELSE 173 END),
         COALESCE(sc.user_type_id, CASE WHEN a.attname IN ('__$operation', '__$command_id') THEN 56 WHEN a.attname = '__$update_mask' THEN 165 ELSE 173 END),
         COALESCE(sc.max_length, CASE WHEN a.attname IN ('__$operation', '__$command_id') THEN 4 WHEN a.attname = '__$update_mask' THEN 128 ELSE 10 END),
         COALESCE(sc.precision, CASE WHEN a.attname IN ('__$operation', '__$command_id') THEN 10 ELSE 0 END), COALESCE(sc.scale, 0)
    FROM pg_attribute a LEFT JOIN pg_attribute sa ON sa.attrelid = src AND sa.attname = a.attname AND NOT sa.attisdropped
    LEFT JOIN _sim.columns sc ON sc.table_oid = src AND sc.attnum = sa.attnum
   WHERE a.attrelid = ct_oid AND a.attnum > 0;
  -- Everything committed so far is captured first (into the instances that exist), so the max
  -- LSN reaching this instance's start means every earlier change is in the change tables, as
  -- the capture job reads SQL Server's log in order.
  PERFORM _sim.cdc_capture();
  -- The instance starts at a new LSN, after every change already captured (SQL Server's start is
  -- the LSN of the enabling transaction): a change captured before belongs to the older
  -- instances only. (The current max LSN was used before, which made a change captured just
  -- before the new instance share its start LSN and be read from neither.)
  INSERT INTO cdc.change_tables (object_id, source_object_id, capture_instance, start_lsn, supports_net_changes, role_name, index_name)
  VALUES (ct_oid::int, src::int, ci, _sim.cdc_next_lsn(), net, role, _sim.nm(
      (SELECT conindid FROM pg_constraint WHERE conrelid = src AND contype = 'p'), pk_name::name));
  INSERT INTO cdc.captured_columns (object_id, column_name, column_id, column_type, column_ordinal, is_computed)
  SELECT ct_oid::int, sc.name, sc.attnum, split_part(sc.type, '(', 1), row_number() OVER (ORDER BY sc.attnum), a.attgenerated <> ''
    FROM _sim.columns sc JOIN pg_attribute a ON a.attrelid = sc.table_oid AND a.attnum = sc.attnum AND NOT a.attisdropped
   WHERE sc.table_oid = src AND (columns IS NULL OR lower(sc.name) = ANY (SELECT lower(btrim(c)) FROM unnest(columns) c));
  INSERT INTO cdc.index_columns SELECT ct_oid::int, c, n::smallint, (SELECT attnum FROM pg_attribute WHERE attrelid = src AND attname = c)
    FROM unnest(pk) WITH ORDINALITY AS x(c, n);
  -- The start LSN must exist in the mapping, so that it lies inside [min, max].
  INSERT INTO cdc.lsn_time_mapping SELECT start_lsn, localtimestamp(3), localtimestamp(3), '\x00'::bytea FROM cdc.change_tables
   WHERE object_id = ct_oid::int ON CONFLICT DO NOTHING;
  IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = src AND tgname = '_sim_cdc_i') THEN
    EXECUTE format('CREATE TRIGGER _sim_cdc_i AFTER INSERT ON %s REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION _sim.cdc_capture_rows(%s)', src::regclass, COALESCE((SELECT string_agg(quote_literal(c), ', ') FROM unnest(pk) c), ''));
    EXECUTE format('CREATE TRIGGER _sim_cdc_u AFTER UPDATE ON %s REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION _sim.cdc_capture_rows(%s)', src::regclass, COALESCE((SELECT string_agg(quote_literal(c), ', ') FROM unnest(pk) c), ''));
    EXECUTE format('CREATE TRIGGER _sim_cdc_d AFTER DELETE ON %s REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION _sim.cdc_capture_rows(%s)', src::regclass, COALESCE((SELECT string_agg(quote_literal(c), ', ') FROM unnest(pk) c), ''));
    EXECUTE format('CREATE TRIGGER _sim_cdc_t BEFORE TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION _sim.cdc_refuse_truncate()', src::regclass);
  END IF;
END $$;

-- sys.sp_cdc_disable_table: one capture instance, or 'all'.
CREATE FUNCTION _sim.cdc_disable_table(src oid, ci text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE r record;
BEGIN
  FOR r IN SELECT object_id, capture_instance FROM cdc.change_tables WHERE source_object_id = src::int AND (lower(ci) = 'all' OR capture_instance = ci) LOOP
    DELETE FROM _sim.columns WHERE table_oid = r.object_id::oid;
    DELETE FROM _sim.tables WHERE oid = r.object_id::oid;
    DELETE FROM cdc.captured_columns WHERE object_id = r.object_id;
    DELETE FROM cdc.index_columns WHERE object_id = r.object_id;
    DELETE FROM cdc.change_tables WHERE object_id = r.object_id;
    EXECUTE format('DROP TABLE %s', r.object_id::regclass);
  END LOOP;
  IF NOT EXISTS (SELECT 1 FROM cdc.change_tables WHERE source_object_id = src::int) THEN
    EXECUTE format('DROP TRIGGER IF EXISTS _sim_cdc_i ON %1$s; DROP TRIGGER IF EXISTS _sim_cdc_u ON %1$s; DROP TRIGGER IF EXISTS _sim_cdc_d ON %1$s; DROP TRIGGER IF EXISTS _sim_cdc_t ON %1$s', src::regclass);
  END IF;
END $$;

-- sys.sp_cdc_cleanup_change_table: removes changes below the low water mark and raises the
-- instance's minimum LSN to it.
CREATE FUNCTION _sim.cdc_cleanup(ci text, low_water_mark bytea) RETURNS void LANGUAGE plpgsql AS $$
DECLARE r record;
BEGIN
  SELECT * INTO r FROM cdc.change_tables WHERE capture_instance = ci;
  IF NOT FOUND THEN
    PERFORM _sim.raise(22985, format('Could not find the capture instance ''%s''.', ci));
  END IF;
  EXECUTE format('DELETE FROM %s WHERE "__$start_lsn" < $1', r.object_id::regclass) USING low_water_mark;
  UPDATE cdc.change_tables SET start_lsn = GREATEST(start_lsn, low_water_mark) WHERE capture_instance = ci;
END $$;

-- cdc.ddl_history: a schema change of a captured table, one row per capture instance.
CREATE FUNCTION _sim.cdc_record_ddl(t oid, cmd text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF to_regclass('cdc.change_tables') IS NULL THEN RETURN; END IF;
  INSERT INTO cdc.ddl_history SELECT source_object_id, object_id, false, cmd, _sim.cdc_next_lsn(), localtimestamp(3)
    FROM cdc.change_tables WHERE source_object_id = t::int;
END $$;

-- The cleanup job: changes older than the retention (sys.sp_cdc_change_job @retention, in
-- minutes; 3 days by default) are removed and each instance's minimum LSN raised.
ALTER TABLE _sim.cdc_state ADD COLUMN retention_minutes int NOT NULL DEFAULT 4320;
-- sp_configure 'max text repl size' (bytes; -1: no limit). Server-wide in SQL Server, per
-- database here.
ALTER TABLE _sim.cdc_state ADD COLUMN max_text_repl_size int NOT NULL DEFAULT 65536;
CREATE FUNCTION _sim.cdc_auto_cleanup() RETURNS void LANGUAGE plpgsql AS $$
DECLARE lwm bytea; r record;
BEGIN
  SELECT start_lsn INTO lwm FROM cdc.lsn_time_mapping
   WHERE tran_end_time >= localtimestamp - make_interval(mins => (SELECT retention_minutes FROM _sim.cdc_state))
   ORDER BY start_lsn LIMIT 1;
  IF lwm IS NULL THEN
    SELECT start_lsn INTO lwm FROM cdc.lsn_time_mapping ORDER BY start_lsn DESC LIMIT 1;
  END IF;
  IF lwm IS NULL THEN RETURN; END IF;
  FOR r IN SELECT capture_instance FROM cdc.change_tables WHERE start_lsn < lwm LOOP
    PERFORM _sim.cdc_cleanup(r.capture_instance, lwm);
  END LOOP;
END $$;

-- sys.configurations: the one option the simulator keeps (sp_configure 'max text repl size').
CREATE VIEW sys.configurations AS
  SELECT 1162 AS configuration_id, 'max text repl size (B)'::varchar(35) AS name, max_text_repl_size AS value,
         -1 AS minimum, 2147483647 AS maximum, max_text_repl_size AS value_in_use,
         'Maximum size of a text field in replication.'::varchar(255) AS description, true AS is_dynamic, false AS is_advanced
  FROM _sim.cdc_state;
