SET check_function_bodies = false;
-- The simulator's catalog inside each database (run once, when the database is created).
-- _sim holds what PostgreSQL cannot: declared T-SQL types, original spellings of names, and the
-- functions the rewriter calls. sys and _sim_is (INFORMATION_SCHEMA) are views over both catalogs.
CREATE SCHEMA _sim;
CREATE COLLATION _sim.ci_as (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
CREATE COLLATION _sim.bin FROM "C";
CREATE SCHEMA IF NOT EXISTS dbo;
CREATE SCHEMA sys;
CREATE SCHEMA _sim_is;

CREATE TABLE _sim.settings (key text PRIMARY KEY, value text);
CREATE TABLE _sim.databases (name text PRIMARY KEY, database_id int NOT NULL, create_date timestamp NOT NULL DEFAULT localtimestamp(3),
    snapshot_isolation boolean NOT NULL DEFAULT false, read_committed_snapshot boolean NOT NULL DEFAULT false,
    is_cdc_enabled boolean NOT NULL DEFAULT false);
CREATE TABLE _sim.names (oid oid PRIMARY KEY, name text NOT NULL);
CREATE TABLE _sim.columns (
    table_oid oid NOT NULL, attnum int2 NOT NULL, name text NOT NULL, type text NOT NULL,
    system_type_id int, user_type_id int, max_length int, precision int, scale int,
    is_identity boolean NOT NULL DEFAULT false, seed numeric, increment numeric,
    default_object_id int, default_name text, default_definition text,
    computed_definition text, is_persisted boolean,
    PRIMARY KEY (table_oid, attnum));
-- filter: a filtered index's predicate as T-SQL text (sys.indexes.filter_definition).
CREATE TABLE _sim.indexes (index_oid oid PRIMARY KEY, table_oid oid NOT NULL, index_id int NOT NULL, clustered boolean NOT NULL,
  filter text);
CREATE TABLE _sim.tables (oid oid PRIMARY KEY, create_date timestamp NOT NULL DEFAULT localtimestamp(3), modify_date timestamp NOT NULL DEFAULT localtimestamp(3));
CREATE SEQUENCE _sim.object_ids START WITH 1000000000;
-- rowversion values: database-wide, rising with every insert and update (as @@DBTS).
CREATE SEQUENCE _sim.rowversion START WITH 2001;

-- ---------- names ----------
CREATE FUNCTION _sim.nm(o oid, fallback name) RETURNS varchar(128) LANGUAGE sql STABLE AS
$$ SELECT COALESCE((SELECT n.name FROM _sim.names n WHERE n.oid = o), fallback::text)::varchar(128) $$;

CREATE FUNCTION _sim.schema_id_of(n oid) RETURNS int LANGUAGE sql STABLE AS
$$ SELECT CASE (SELECT nspname FROM pg_namespace WHERE oid = n) WHEN 'dbo' THEN 1 WHEN 'sys' THEN 4 WHEN '_sim_is' THEN 3 ELSE n::int END $$;

-- Splits a T-SQL multi-part name ('[dbo].[a]]b]', 'dbo.t', 't', '"x"') into lower-cased parts.
CREATE FUNCTION _sim.parse_name(s text) RETURNS text[] LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE parts text[] := '{}'; cur text := ''; i int := 1; c text; q text; n int := length(s);
BEGIN
  IF s IS NULL THEN RETURN NULL; END IF;
  WHILE i <= n LOOP
    c := substr(s, i, 1);
    IF c = '[' OR c = '"' THEN
      -- A quoted part ends at its closing quote; a doubled closing quote stands for itself.
      q := CASE c WHEN '[' THEN ']' ELSE '"' END;
      i := i + 1;
      WHILE i <= n LOOP
        c := substr(s, i, 1);
        IF c = q THEN
          IF substr(s, i + 1, 1) = q THEN cur := cur || q; i := i + 1; ELSE EXIT; END IF;
        ELSE cur := cur || c; END IF;
        i := i + 1;
      END LOOP;
    ELSIF c = '.' THEN
      parts := parts || lower(cur); cur := '';
    ELSE
      cur := cur || c;
    END IF;
    i := i + 1;
  END LOOP;
  RETURN parts || lower(btrim(cur));
END $$;

CREATE FUNCTION _sim.regclass_of(s text) RETURNS oid LANGUAGE plpgsql STABLE AS $$
DECLARE p text[] := _sim.parse_name(s); n int := array_length(p, 1);
BEGIN
  IF n IS NULL THEN RETURN NULL; END IF;
  IF n = 1 THEN
    IF left(p[1], 1) = '#' THEN RETURN to_regclass(quote_ident(p[1]))::oid; END IF;
    RETURN to_regclass('dbo.' || quote_ident(p[1]))::oid;
  END IF;
  RETURN to_regclass(quote_ident(CASE WHEN p[n-1] = '' THEN 'dbo' ELSE p[n-1] END) || '.' || quote_ident(p[n]))::oid;
END $$;

CREATE FUNCTION _sim.object_id(s text) RETURNS int LANGUAGE sql STABLE AS $$ SELECT _sim.regclass_of(s)::int $$;
CREATE FUNCTION _sim.object_id(s text, t text) RETURNS int LANGUAGE sql STABLE AS $$ SELECT _sim.regclass_of(s)::int $$;
-- HAS_PERMS_BY_NAME: every simulator login is a sysadmin, so 1 for any securable that exists;
-- NULL for an OBJECT that does not, as SQL Server answers.
CREATE FUNCTION _sim.has_perms_by_name(s text, cls text, perm text) RETURNS int LANGUAGE sql STABLE AS
$$ SELECT CASE WHEN upper(cls) = 'OBJECT' AND _sim.regclass_of(s) IS NULL THEN NULL ELSE 1 END $$;
CREATE FUNCTION _sim.object_name(i int) RETURNS varchar(128) LANGUAGE sql STABLE AS
$$ SELECT _sim.nm(c.oid, c.relname) FROM pg_class c WHERE c.oid = i::oid $$;
CREATE FUNCTION _sim.schema_name(i int) RETURNS varchar(128) LANGUAGE sql STABLE AS
$$ SELECT _sim.nm(n.oid, n.nspname) FROM pg_namespace n WHERE _sim.schema_id_of(n.oid) = i $$;
CREATE FUNCTION _sim.schema_id(s text) RETURNS int LANGUAGE sql STABLE AS
$$ SELECT _sim.schema_id_of(n.oid) FROM pg_namespace n WHERE n.nspname = lower(s) $$;
CREATE FUNCTION _sim.db_id(s text) RETURNS smallint LANGUAGE sql STABLE AS
$$ SELECT database_id::smallint FROM _sim.databases WHERE lower(name) = lower(s) $$;
CREATE FUNCTION _sim.type_name(i int) RETURNS varchar(128) LANGUAGE sql STABLE AS
$$ SELECT name FROM sys.types WHERE user_type_id = i $$;

-- ---------- identity ----------
CREATE FUNCTION _sim.identity_column(t oid) RETURNS _sim.columns LANGUAGE sql STABLE AS
$$ SELECT * FROM _sim.columns WHERE table_oid = t AND is_identity LIMIT 1 $$;

CREATE FUNCTION _sim.ident_last(t oid) RETURNS numeric LANGUAGE plpgsql STABLE AS $$
DECLARE col _sim.columns; seq text; lv bigint; called boolean;
BEGIN
  col := _sim.identity_column(t);
  IF col.table_oid IS NULL THEN RETURN NULL; END IF;
  SELECT pg_get_serial_sequence(t::regclass::text, a.attname) INTO seq FROM pg_attribute a WHERE a.attrelid = t AND a.attnum = col.attnum;
  IF seq IS NULL THEN RETURN NULL; END IF;
  EXECUTE format('SELECT last_value, is_called FROM %s', seq) INTO lv, called;
  IF called THEN RETURN lv; END IF;
  RETURN NULL;
END $$;

-- DBCC CHECKIDENT (t, RESEED, n): the next identity is n + increment.
CREATE FUNCTION _sim.reseed(s text, n bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE t oid := _sim.regclass_of(s); col _sim.columns; seq text;
BEGIN
  col := _sim.identity_column(t);
  IF col.table_oid IS NULL THEN
    RAISE EXCEPTION '%', format('[7997] ''%s'' does not contain an identity column.', s);
  END IF;
  SELECT pg_get_serial_sequence(t::regclass::text, a.attname) INTO seq FROM pg_attribute a WHERE a.attrelid = t AND a.attnum = col.attnum;
  PERFORM setval(seq, n, true);
END $$;

CREATE FUNCTION _sim.ident_current(s text) RETURNS numeric LANGUAGE sql STABLE AS
$$ SELECT COALESCE(_sim.ident_last(_sim.regclass_of(s)), (_sim.identity_column(_sim.regclass_of(s))).seed) $$;
CREATE FUNCTION _sim.ident_seed(s text) RETURNS numeric LANGUAGE sql STABLE AS
$$ SELECT (_sim.identity_column(_sim.regclass_of(s))).seed $$;
CREATE FUNCTION _sim.ident_incr(s text) RETURNS numeric LANGUAGE sql STABLE AS
$$ SELECT (_sim.identity_column(_sim.regclass_of(s))).increment $$;

-- SCOPE_IDENTITY(): the session's last identity value for the table it last inserted into.
CREATE FUNCTION _sim.scope_identity(t text) RETURNS numeric LANGUAGE plpgsql VOLATILE AS $$
DECLARE v numeric;
BEGIN
  SELECT currval(pg_get_serial_sequence(t, a.attname)) INTO v
    FROM _sim.columns c JOIN pg_attribute a ON a.attrelid = c.table_oid AND a.attnum = c.attnum
   WHERE c.table_oid = to_regclass(t) AND c.is_identity;
  RETURN v;
EXCEPTION WHEN object_not_in_prerequisite_state THEN RETURN NULL;
END $$;

-- ---------- properties ----------
CREATE FUNCTION _sim.columnproperty(t int, col text, prop text) RETURNS int LANGUAGE sql STABLE AS $$
  SELECT CASE lower(prop)
    WHEN 'isidentity' THEN c.is_identity::int
    WHEN 'allowsnull' THEN (NOT a.attnotnull)::int
    WHEN 'iscomputed' THEN (a.attgenerated <> '')::int
    -- PostgreSQL accepts only immutable expressions for the computed columns it keeps.
    WHEN 'isdeterministic' THEN CASE WHEN a.attgenerated <> '' THEN 1 END
    WHEN 'columnid' THEN a.attnum::int
    WHEN 'precision' THEN c.precision
    WHEN 'scale' THEN c.scale
    WHEN 'charmaxlen' THEN CASE WHEN c.max_length = -1 THEN -1 WHEN c.type LIKE 'n%char%' THEN c.max_length / 2 ELSE c.max_length END
    ELSE NULL END
  FROM _sim.columns c JOIN pg_attribute a ON a.attrelid = c.table_oid AND a.attnum = c.attnum
  WHERE c.table_oid = t::oid AND lower(c.name) = lower(col) AND NOT a.attisdropped $$;

CREATE FUNCTION _sim.objectproperty(t int, prop text) RETURNS int LANGUAGE sql STABLE AS $$
  SELECT CASE lower(prop)
    WHEN 'isusertable' THEN (EXISTS (SELECT 1 FROM _sim.tables WHERE oid = t::oid))::int
    WHEN 'tablehasprimarykey' THEN (EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = t::oid AND contype = 'p'))::int
    WHEN 'tablehasidentity' THEN (EXISTS (SELECT 1 FROM _sim.columns WHERE table_oid = t::oid AND is_identity))::int
    ELSE NULL END $$;

CREATE FUNCTION _sim.serverproperty(p text) RETURNS text LANGUAGE sql STABLE AS $$
  SELECT CASE lower(p)
    WHEN 'productversion' THEN '16.0.4095.4'
    WHEN 'productmajorversion' THEN '16'
    WHEN 'productlevel' THEN 'RTM'
    WHEN 'edition' THEN 'Developer Edition (64-bit)'
    WHEN 'engineedition' THEN '3'
    WHEN 'servername' THEN 'mssql-sim'
    WHEN 'machinename' THEN 'mssql-sim'
    WHEN 'collation' THEN 'SQL_Latin1_General_CP1_CI_AS'
    WHEN 'isclustered' THEN '0'
    WHEN 'ishadrenabled' THEN '0'
    ELSE NULL END $$;

CREATE FUNCTION _sim.databasepropertyex(db text, p text) RETURNS text LANGUAGE sql STABLE AS $$
  SELECT CASE lower(p)
    WHEN 'collation' THEN 'SQL_Latin1_General_CP1_CI_AS'
    WHEN 'status' THEN 'ONLINE'
    WHEN 'updateability' THEN 'READ_WRITE'
    WHEN 'recovery' THEN 'FULL'
    ELSE NULL END $$;

-- ---------- strings and hashes ----------
CREATE FUNCTION _sim.len(s text) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT length(rtrim(s, ' ')) $$;
CREATE FUNCTION _sim.datalength(s text) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT octet_length(_sim.utf16le(s)) $$;
CREATE FUNCTION _sim.datalength(b bytea) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT octet_length(b) $$;
CREATE FUNCTION _sim.charindex(needle text, hay text, start int) RETURNS int LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN needle IS NULL OR hay IS NULL THEN NULL
    WHEN strpos(lower(substr(hay, greatest(start, 1)) COLLATE _sim.bin), lower(needle COLLATE _sim.bin)) = 0 THEN 0
    ELSE strpos(lower(substr(hay, greatest(start, 1)) COLLATE _sim.bin), lower(needle COLLATE _sim.bin)) + greatest(start, 1) - 1 END $$;
CREATE FUNCTION _sim.isnumeric(s text) RETURNS int LANGUAGE sql IMMUTABLE AS
$$ SELECT (s ~ '^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$')::int $$;

-- Text in stored form (U+10FFFF escapes) to UTF-16LE bytes, as nvarchar is on SQL Server.
CREATE FUNCTION _sim.utf16le(s text) RETURNS bytea LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE out bytea := ''::bytea; i int := 1; n int := length(s); c int; u int;
BEGIN
  IF s IS NULL THEN RETURN NULL; END IF;
  IF (s COLLATE "C") !~ '[^\x01-\x7F]' THEN
    RETURN decode(regexp_replace(encode(convert_to(s, 'UTF8'), 'hex'), '(..)', '\100', 'g'), 'hex');
  END IF;
  WHILE i <= n LOOP
    c := ascii(substr(s, i, 1));
    IF c = 1114111 AND i < n THEN
      i := i + 1;
      IF substr(s, i, 1) = '0' THEN c := 0;
      ELSIF substr(s, i, 1) = 'u' THEN c := ('x' || lpad(substr(s, i + 1, 4), 8, '0'))::bit(32)::int; i := i + 4;
      ELSE c := 1114111; END IF;
    END IF;
    IF c < 65536 THEN
      out := out || set_byte(set_byte('\x0000'::bytea, 0, c & 255), 1, c >> 8);
    ELSE
      u := c - 65536;
      out := out || set_byte(set_byte('\x0000'::bytea, 0, (55296 + (u >> 10)) & 255), 1, (55296 + (u >> 10)) >> 8)
                 || set_byte(set_byte('\x0000'::bytea, 0, (56320 + (u & 1023)) & 255), 1, (56320 + (u & 1023)) >> 8);
    END IF;
    i := i + 1;
  END LOOP;
  RETURN out;
END $$;
-- UTF-16LE bytes to text in stored form (NUL, lone surrogates and U+10FFFF escaped): CAST(varbinary AS nvarchar).
CREATE FUNCTION _sim.from_utf16le(b bytea) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE out text := ''; i int := 0; n int; u int; v int;
BEGIN
  IF b IS NULL THEN RETURN NULL; END IF;
  n := length(b) - length(b) % 2;
  WHILE i < n LOOP
    u := get_byte(b, i) + 256 * get_byte(b, i + 1);
    i := i + 2;
    IF u BETWEEN 55296 AND 56319 AND i < n THEN
      v := get_byte(b, i) + 256 * get_byte(b, i + 1);
      IF v BETWEEN 56320 AND 57343 THEN
        out := out || chr(65536 + ((u - 55296) << 10) + (v - 56320));
        i := i + 2;
        CONTINUE;
      END IF;
    END IF;
    IF u = 0 THEN out := out || chr(1114111) || '0';
    ELSIF u BETWEEN 55296 AND 57343 THEN out := out || chr(1114111) || 'u' || lpad(to_hex(u), 4, '0');
    ELSE out := out || chr(u);
    END IF;
  END LOOP;
  RETURN out;
END $$;
-- NCHAR(n): one UTF-16 code unit, NUL and lone surrogates in their stored (escaped) form.
CREATE FUNCTION _sim.nchar(n int) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN n IS NULL OR n < 0 OR n > 65535 THEN NULL
    WHEN n = 0 THEN chr(1114111) || '0'
    WHEN n BETWEEN 55296 AND 57343 THEN chr(1114111) || 'u' || lpad(to_hex(n), 4, '0')
    WHEN n = 1114111 THEN chr(1114111) || chr(1114111)
    ELSE chr(n) END $$;
-- UNICODE(s): the first UTF-16 code unit of s.
CREATE FUNCTION _sim.unicode(s text) RETURNS int LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN s IS NULL OR s = '' THEN NULL ELSE get_byte(b, 0) + 256 * get_byte(b, 1) END
  FROM (SELECT _sim.utf16le(left(s, 6)) AS b) x $$;
-- CHAR(n) and ASCII(s) work in code page 1252, as varchar does.
CREATE FUNCTION _sim.char(n int) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN n IS NULL OR n < 0 OR n > 255 THEN NULL WHEN n = 0 THEN chr(1114111) || '0'
    ELSE convert_from(set_byte('\x00'::bytea, 0, n), 'WIN1252') END $$;
CREATE FUNCTION _sim.ascii(s text) RETURNS int LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN s IS NULL OR s = '' THEN NULL WHEN left(s, 2) = chr(1114111) || '0' THEN 0
    ELSE get_byte(convert_to(left(s, 1), 'WIN1252'), 0) END $$;
CREATE FUNCTION _sim.cp1252(s text) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$ SELECT convert_to(s, 'WIN1252') $$;

CREATE FUNCTION _sim.sha1(b bytea) RETURNS bytea LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  RETURN _sim.digest(b, 'sha1');
EXCEPTION WHEN undefined_function THEN
  RAISE EXCEPTION 'HASHBYTES(''SHA1'') needs the pgcrypto extension in the backing PostgreSQL';
END $$;
-- SQL, not plpgsql: inlined into the query (validation hashes every row of a table).
CREATE FUNCTION _sim.hashbytes(alg text, data bytea) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE upper(alg)
    WHEN 'MD5' THEN decode(md5(data), 'hex')
    WHEN 'SHA2_256' THEN sha256(data)
    WHEN 'SHA2_512' THEN sha512(data)
    WHEN 'SHA1' THEN _sim.sha1(data)
    WHEN 'SHA' THEN _sim.sha1(data)
    ELSE NULL END $$;
CREATE FUNCTION _sim.checksum(s text) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT hashtext(s) $$;

-- ---------- date and time ----------
CREATE FUNCTION _sim.getdate() RETURNS timestamp(3) LANGUAGE sql VOLATILE AS $$ SELECT clock_timestamp()::timestamp(3) $$;
CREATE FUNCTION _sim.getutcdate() RETURNS timestamp(3) LANGUAGE sql VOLATILE AS $$ SELECT (clock_timestamp() AT TIME ZONE 'UTC')::timestamp(3) $$;
CREATE FUNCTION _sim.sysdatetime() RETURNS timestamp LANGUAGE sql VOLATILE AS $$ SELECT clock_timestamp()::timestamp $$;
CREATE FUNCTION _sim.sysutcdatetime() RETURNS timestamp LANGUAGE sql VOLATILE AS $$ SELECT clock_timestamp() AT TIME ZONE 'UTC' $$;
CREATE FUNCTION _sim.sysdatetimeoffset() RETURNS text LANGUAGE sql VOLATILE AS
$$ SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '0 +00:00' $$;

-- Stored datetime2/datetimeoffset text to timestamp (sub-microsecond digits rounded).
CREATE FUNCTION _sim.ts(s text) RETURNS timestamp LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN s ~ '[+-]\d\d:\d\d$' THEN left(s, length(s) - 7)::timestamp ELSE s::timestamp END $$;
CREATE FUNCTION _sim.ts(t timestamp) RETURNS timestamp LANGUAGE sql IMMUTABLE AS $$ SELECT t $$;
CREATE FUNCTION _sim.ts(d date) RETURNS timestamp LANGUAGE sql IMMUTABLE AS $$ SELECT d::timestamp $$;
CREATE FUNCTION _sim.to_datetime2(s text) RETURNS timestamp LANGUAGE sql IMMUTABLE AS $$ SELECT _sim.ts(s) $$;
CREATE FUNCTION _sim.to_datetime2(t timestamp) RETURNS timestamp LANGUAGE sql IMMUTABLE AS $$ SELECT t $$;
CREATE FUNCTION _sim.to_datetime2(d date) RETURNS timestamp LANGUAGE sql IMMUTABLE AS $$ SELECT d::timestamp $$;
CREATE FUNCTION _sim.to_datetimeoffset(s text) RETURNS text LANGUAGE sql IMMUTABLE AS
$$ SELECT CASE WHEN s ~ '[+-]\d\d:\d\d$' THEN s ELSE to_char(_sim.ts(s), 'YYYY-MM-DD HH24:MI:SS.US') || '0 +00:00' END $$;
CREATE FUNCTION _sim.to_datetimeoffset(t timestamp) RETURNS text LANGUAGE sql IMMUTABLE AS
$$ SELECT to_char(t, 'YYYY-MM-DD HH24:MI:SS.US') || '0 +00:00' $$;
CREATE FUNCTION _sim.to_time(s text) RETURNS time LANGUAGE sql IMMUTABLE AS
$$ SELECT CASE WHEN s ~ '^\d\d:' THEN s::time ELSE _sim.ts(s)::time END $$;
CREATE FUNCTION _sim.to_time(t timestamp) RETURNS time LANGUAGE sql IMMUTABLE AS $$ SELECT t::time $$;
CREATE FUNCTION _sim.to_bit(s text) RETURNS smallint LANGUAGE sql IMMUTABLE AS
$$ SELECT CASE WHEN s IS NULL THEN NULL WHEN upper(btrim(s)) IN ('TRUE', '1') THEN 1 WHEN upper(btrim(s)) IN ('FALSE', '0') THEN 0 ELSE (s::numeric <> 0)::int END::smallint $$;
CREATE FUNCTION _sim.to_bit(n numeric) RETURNS smallint LANGUAGE sql IMMUTABLE AS $$ SELECT (n <> 0)::int::smallint $$;
-- Text under a _UTF8 collation (SQL Server 2019): the same text, known to the rewriter.
CREATE FUNCTION _sim.utf8(s text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT s $$;
-- binary to an integer type: the last 8 bytes, big-endian, as SQL Server reads them.
CREATE FUNCTION _sim.binary_to_bigint(b bytea) RETURNS bigint LANGUAGE sql IMMUTABLE AS
$$ SELECT ('x' || lpad(right(encode(b, 'hex'), 16), 16, '0'))::bit(64)::bigint $$;
CREATE FUNCTION _sim.to_varbinary(s text) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$ SELECT _sim.utf16le(s) $$;
CREATE FUNCTION _sim.to_varbinary(b bytea) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$ SELECT b $$;
CREATE FUNCTION _sim.to_varbinary(i int) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$ SELECT int4send(i) $$;
CREATE FUNCTION _sim.to_varbinary(i bigint) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$ SELECT int8send(i) $$;
-- No FROM clause, only immutable calls: PostgreSQL inlines it into the calling query.
CREATE FUNCTION _sim.to_varbinary(u uuid) RETURNS bytea LANGUAGE sql IMMUTABLE AS
$$ SELECT substr(uuid_send(u),4,1)||substr(uuid_send(u),3,1)||substr(uuid_send(u),2,1)||substr(uuid_send(u),1,1)
       ||substr(uuid_send(u),6,1)||substr(uuid_send(u),5,1)||substr(uuid_send(u),8,1)||substr(uuid_send(u),7,1)||substr(uuid_send(u),9,8) $$;

CREATE FUNCTION _sim.convert_text(t timestamp, style int) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE style
    WHEN 121 THEN to_char(t, 'YYYY-MM-DD HH24:MI:SS.MS') WHEN 21 THEN to_char(t, 'YYYY-MM-DD HH24:MI:SS.MS')
    WHEN 126 THEN to_char(t, 'YYYY-MM-DD"T"HH24:MI:SS.MS') WHEN 127 THEN to_char(t, 'YYYY-MM-DD"T"HH24:MI:SS.MS')
    WHEN 120 THEN to_char(t, 'YYYY-MM-DD HH24:MI:SS') WHEN 20 THEN to_char(t, 'YYYY-MM-DD HH24:MI:SS')
    WHEN 112 THEN to_char(t, 'YYYYMMDD') WHEN 23 THEN to_char(t, 'YYYY-MM-DD') WHEN 108 THEN to_char(t, 'HH24:MI:SS')
    ELSE t::text END $$;
CREATE FUNCTION _sim.convert_text(s text, style int) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN style IN (126, 127) AND s ~ '^\d{4}-\d\d-\d\d \d' THEN overlay(s placing 'T' from 11 for 1)
    WHEN style IN (112) AND s ~ '^\d{4}-\d\d-\d\d' THEN replace(left(s, 10), '-', '')
    WHEN style IN (23) AND s ~ '^\d{4}-\d\d-\d\d' THEN left(s, 10)
    ELSE s END $$;
CREATE FUNCTION _sim.convert_text(d date, style int) RETURNS text LANGUAGE sql IMMUTABLE AS
$$ SELECT _sim.convert_text(d::timestamp, style) $$;
CREATE FUNCTION _sim.convert_text(b bytea, style int) RETURNS text LANGUAGE sql IMMUTABLE AS
$$ SELECT CASE style WHEN 1 THEN '0x' || upper(encode(b, 'hex')) WHEN 2 THEN upper(encode(b, 'hex')) ELSE convert_from(b, 'UTF8') END $$;
CREATE FUNCTION _sim.convert_text(n numeric, style int) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT n::text $$;
-- Floats: PostgreSQL's shortest text that reads back as the same number (styles 1-3 keep every
-- digit on SQL Server too).
CREATE FUNCTION _sim.convert_text(f double precision, style int) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT f::text $$;
CREATE FUNCTION _sim.convert_text(f real, style int) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT f::text $$;

-- sql_variant: the base type's name (SQL_VARIANT_PROPERTY(v, 'BaseType')) and the value as text.
-- CAST(x AS sql_variant) and the INSERT/UPDATE of a literal name the base type; typed values
-- arrive through the assignment casts below. Read as text (or varchar, or a number) it is the
-- value.
CREATE TYPE _sim.variant AS (base text, val text);
CREATE FUNCTION _sim.variant(base text, val text) RETURNS _sim.variant LANGUAGE sql IMMUTABLE AS
$$ SELECT CASE WHEN val IS NULL THEN NULL ELSE ROW(base, val)::_sim.variant END $$;
CREATE FUNCTION _sim.variant_property(v _sim.variant, p text) RETURNS text LANGUAGE sql IMMUTABLE AS
$$ SELECT CASE lower(p) WHEN 'basetype' THEN v.base END $$;
CREATE FUNCTION _sim.variant_text(v _sim.variant) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT v.val $$;
CREATE CAST (_sim.variant AS text) WITH FUNCTION _sim.variant_text(_sim.variant) AS IMPLICIT;
CREATE FUNCTION _sim.variant_varchar(v _sim.variant) RETURNS varchar LANGUAGE sql IMMUTABLE AS $$ SELECT v.val::varchar $$;
CREATE CAST (_sim.variant AS varchar) WITH FUNCTION _sim.variant_varchar(_sim.variant) AS ASSIGNMENT;
CREATE FUNCTION _sim.variant_numeric(v _sim.variant) RETURNS numeric LANGUAGE sql IMMUTABLE AS $$ SELECT v.val::numeric $$;
CREATE CAST (_sim.variant AS numeric) WITH FUNCTION _sim.variant_numeric(_sim.variant);
CREATE FUNCTION _sim.variant_int(v _sim.variant) RETURNS integer LANGUAGE sql IMMUTABLE AS $$ SELECT v.val::integer $$;
CREATE CAST (_sim.variant AS integer) WITH FUNCTION _sim.variant_int(_sim.variant);
CREATE FUNCTION _sim.variant_bigint(v _sim.variant) RETURNS bigint LANGUAGE sql IMMUTABLE AS $$ SELECT v.val::bigint $$;
CREATE CAST (_sim.variant AS bigint) WITH FUNCTION _sim.variant_bigint(_sim.variant);
CREATE FUNCTION _sim.variant_float(v _sim.variant) RETURNS double precision LANGUAGE sql IMMUTABLE AS $$ SELECT v.val::double precision $$;
CREATE CAST (_sim.variant AS double precision) WITH FUNCTION _sim.variant_float(_sim.variant);
CREATE FUNCTION _sim.variant_real(v _sim.variant) RETURNS real LANGUAGE sql IMMUTABLE AS $$ SELECT v.val::real $$;
CREATE CAST (_sim.variant AS real) WITH FUNCTION _sim.variant_real(_sim.variant);
CREATE FUNCTION _sim.variant_timestamp(v _sim.variant) RETURNS timestamp LANGUAGE sql IMMUTABLE AS $$ SELECT v.val::timestamp $$;
CREATE CAST (_sim.variant AS timestamp) WITH FUNCTION _sim.variant_timestamp(_sim.variant);
CREATE FUNCTION _sim.variant_bytea(v _sim.variant) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN v.base IN ('binary', 'varbinary') THEN decode(substr(v.val, 3), 'hex') ELSE _sim.utf16le(v.val) END $$;
CREATE CAST (_sim.variant AS bytea) WITH FUNCTION _sim.variant_bytea(_sim.variant);
CREATE FUNCTION _sim.variant_of(v integer) RETURNS _sim.variant LANGUAGE sql IMMUTABLE AS $$ SELECT _sim.variant('int', v::text) $$;
CREATE CAST (integer AS _sim.variant) WITH FUNCTION _sim.variant_of(integer) AS ASSIGNMENT;
CREATE FUNCTION _sim.variant_of(v bigint) RETURNS _sim.variant LANGUAGE sql IMMUTABLE AS $$ SELECT _sim.variant('bigint', v::text) $$;
CREATE CAST (bigint AS _sim.variant) WITH FUNCTION _sim.variant_of(bigint) AS ASSIGNMENT;
CREATE FUNCTION _sim.variant_of(v smallint) RETURNS _sim.variant LANGUAGE sql IMMUTABLE AS $$ SELECT _sim.variant('smallint', v::text) $$;
CREATE CAST (smallint AS _sim.variant) WITH FUNCTION _sim.variant_of(smallint) AS ASSIGNMENT;
CREATE FUNCTION _sim.variant_of(v numeric) RETURNS _sim.variant LANGUAGE sql IMMUTABLE AS $$ SELECT _sim.variant('numeric', v::text) $$;
CREATE CAST (numeric AS _sim.variant) WITH FUNCTION _sim.variant_of(numeric) AS ASSIGNMENT;
CREATE FUNCTION _sim.variant_of(v double precision) RETURNS _sim.variant LANGUAGE sql IMMUTABLE AS $$ SELECT _sim.variant('float', v::text) $$;
CREATE CAST (double precision AS _sim.variant) WITH FUNCTION _sim.variant_of(double precision) AS ASSIGNMENT;
CREATE FUNCTION _sim.variant_of(v real) RETURNS _sim.variant LANGUAGE sql IMMUTABLE AS $$ SELECT _sim.variant('real', v::text) $$;
CREATE CAST (real AS _sim.variant) WITH FUNCTION _sim.variant_of(real) AS ASSIGNMENT;
CREATE FUNCTION _sim.variant_of(v text) RETURNS _sim.variant LANGUAGE sql IMMUTABLE AS $$ SELECT _sim.variant('nvarchar', v) $$;
CREATE CAST (text AS _sim.variant) WITH FUNCTION _sim.variant_of(text) AS ASSIGNMENT;
CREATE FUNCTION _sim.variant_of(v varchar) RETURNS _sim.variant LANGUAGE sql IMMUTABLE AS $$ SELECT _sim.variant('nvarchar', v::text) $$;
CREATE CAST (varchar AS _sim.variant) WITH FUNCTION _sim.variant_of(varchar) AS ASSIGNMENT;
CREATE FUNCTION _sim.variant_of(v bytea) RETURNS _sim.variant LANGUAGE sql IMMUTABLE AS $$ SELECT _sim.variant('varbinary', '0x' || upper(encode(v, 'hex'))) $$;
CREATE CAST (bytea AS _sim.variant) WITH FUNCTION _sim.variant_of(bytea) AS ASSIGNMENT;
CREATE FUNCTION _sim.variant_of(v uuid) RETURNS _sim.variant LANGUAGE sql IMMUTABLE AS $$ SELECT _sim.variant('uniqueidentifier', upper(v::text)) $$;
CREATE CAST (uuid AS _sim.variant) WITH FUNCTION _sim.variant_of(uuid) AS ASSIGNMENT;
CREATE FUNCTION _sim.variant_of(v timestamp) RETURNS _sim.variant LANGUAGE sql IMMUTABLE AS $$ SELECT _sim.variant('datetime', v::text) $$;
CREATE CAST (timestamp AS _sim.variant) WITH FUNCTION _sim.variant_of(timestamp) AS ASSIGNMENT;
CREATE FUNCTION _sim.variant_of(v date) RETURNS _sim.variant LANGUAGE sql IMMUTABLE AS $$ SELECT _sim.variant('date', v::text) $$;
CREATE CAST (date AS _sim.variant) WITH FUNCTION _sim.variant_of(date) AS ASSIGNMENT;

CREATE FUNCTION _sim.part(p text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE lower(p)
    WHEN 'yy' THEN 'year' WHEN 'yyyy' THEN 'year' WHEN 'qq' THEN 'quarter' WHEN 'q' THEN 'quarter'
    WHEN 'mm' THEN 'month' WHEN 'm' THEN 'month' WHEN 'dd' THEN 'day' WHEN 'd' THEN 'day'
    WHEN 'dy' THEN 'dayofyear' WHEN 'y' THEN 'dayofyear' WHEN 'wk' THEN 'week' WHEN 'ww' THEN 'week'
    WHEN 'dw' THEN 'weekday' WHEN 'hh' THEN 'hour' WHEN 'mi' THEN 'minute' WHEN 'n' THEN 'minute'
    WHEN 'ss' THEN 'second' WHEN 's' THEN 'second' WHEN 'ms' THEN 'millisecond' WHEN 'mcs' THEN 'microsecond'
    WHEN 'ns' THEN 'nanosecond' ELSE lower(p) END $$;

CREATE FUNCTION _sim.datepart(p text, t timestamp) RETURNS int LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE _sim.part(p)
    WHEN 'year' THEN extract(year FROM t) WHEN 'quarter' THEN extract(quarter FROM t)
    WHEN 'month' THEN extract(month FROM t) WHEN 'day' THEN extract(day FROM t)
    WHEN 'dayofyear' THEN extract(doy FROM t) WHEN 'week' THEN extract(week FROM t)
    WHEN 'weekday' THEN extract(dow FROM t) + 1 WHEN 'hour' THEN extract(hour FROM t)
    WHEN 'minute' THEN extract(minute FROM t) WHEN 'second' THEN floor(extract(second FROM t))
    WHEN 'millisecond' THEN floor(extract(microseconds FROM t) / 1000)::int % 1000
    WHEN 'microsecond' THEN extract(microseconds FROM t)::int % 1000000
    WHEN 'nanosecond' THEN (extract(microseconds FROM t)::int % 1000000) * 1000
    END::int $$;
CREATE FUNCTION _sim.datepart(p text, s text) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT _sim.datepart(p, _sim.ts(s)) $$;
CREATE FUNCTION _sim.datepart(p text, d date) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT _sim.datepart(p, d::timestamp) $$;
CREATE FUNCTION _sim.datename(p text, t timestamp) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE _sim.part(p) WHEN 'month' THEN trim(to_char(t, 'Month')) WHEN 'weekday' THEN trim(to_char(t, 'Day'))
    ELSE _sim.datepart(p, t)::text END $$;
CREATE FUNCTION _sim.datename(p text, s text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT _sim.datename(p, _sim.ts(s)) $$;

CREATE FUNCTION _sim.dateadd(p text, n bigint, t timestamp) RETURNS timestamp LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE _sim.part(p)
    WHEN 'year' THEN t + make_interval(years => n::int) WHEN 'quarter' THEN t + make_interval(months => 3 * n::int)
    WHEN 'month' THEN t + make_interval(months => n::int) WHEN 'week' THEN t + make_interval(weeks => n::int)
    WHEN 'hour' THEN t + make_interval(hours => n::int) WHEN 'minute' THEN t + make_interval(mins => n::int)
    WHEN 'second' THEN t + make_interval(secs => n) WHEN 'millisecond' THEN t + make_interval(secs => n / 1000.0)
    WHEN 'microsecond' THEN t + make_interval(secs => n / 1000000.0)
    ELSE t + make_interval(days => n::int) END $$;
CREATE FUNCTION _sim.dateadd(p text, n bigint, s text) RETURNS timestamp LANGUAGE sql IMMUTABLE AS $$ SELECT _sim.dateadd(p, n, _sim.ts(s)) $$;
CREATE FUNCTION _sim.dateadd(p text, n bigint, d date) RETURNS date LANGUAGE sql IMMUTABLE AS $$ SELECT _sim.dateadd(p, n, d::timestamp)::date $$;

-- DATEDIFF counts boundaries crossed, as SQL Server does.
-- datetime (timestamp storage, milliseconds standing for 1/300 s ticks) to datetime2(sc) text:
-- the exact tick value rounded to sc digits, as SQL Server converts it.
CREATE FUNCTION _sim.datetime_to_datetime2(t timestamp, sc int) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN t IS NULL THEN NULL ELSE
    to_char(date_trunc('second', t), 'YYYY-MM-DD HH24:MI:SS') || '.' ||
        lpad((round(round((extract(microseconds FROM t)::bigint % 1000000) * 3 / 10000.0) * 100000 / 3.0
      / 10 ^ (7 - sc)) * 10 ^ (7 - sc))::bigint::text, 7, '0') END $$;
-- Timestamp storage holds datetime (and date): its fraction is whole 1/300 s ticks, shown
-- rounded to milliseconds; microseconds are counted from the exact tick, as SQL Server does.
CREATE FUNCTION _sim.datetime_micros(t timestamp) RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
  SELECT floor(extract(epoch FROM date_trunc('second', t)))::bigint * 1000000
       + floor(round((extract(microseconds FROM t)::bigint % 1000000) * 3 / 10000.0) * 10000 / 3.0)::bigint $$;
CREATE FUNCTION _sim.datediff(p text, a timestamp, b timestamp) RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE _sim.part(p)
    WHEN 'year' THEN extract(year FROM b) - extract(year FROM a)
    WHEN 'quarter' THEN (extract(year FROM b) * 4 + extract(quarter FROM b)) - (extract(year FROM a) * 4 + extract(quarter FROM a))
    WHEN 'month' THEN (extract(year FROM b) * 12 + extract(month FROM b)) - (extract(year FROM a) * 12 + extract(month FROM a))
    WHEN 'week' THEN ((b::date - extract(dow FROM b)::int) - date '2000-01-02') / 7 - ((a::date - extract(dow FROM a)::int) - date '2000-01-02') / 7
    WHEN 'hour' THEN floor(extract(epoch FROM date_trunc('hour', b)) / 3600) - floor(extract(epoch FROM date_trunc('hour', a)) / 3600)
    WHEN 'minute' THEN floor(extract(epoch FROM date_trunc('minute', b)) / 60) - floor(extract(epoch FROM date_trunc('minute', a)) / 60)
    WHEN 'second' THEN floor(extract(epoch FROM date_trunc('second', b))) - floor(extract(epoch FROM date_trunc('second', a)))
    WHEN 'millisecond' THEN floor(extract(epoch FROM date_trunc('milliseconds', b)) * 1000) - floor(extract(epoch FROM date_trunc('milliseconds', a)) * 1000)
        WHEN 'microsecond' THEN _sim.datetime_micros(b) - _sim.datetime_micros(a)
    ELSE b::date - a::date END::bigint $$;
-- Microseconds since 1970 of a value in canonical text form (datetime2 'YYYY-MM-DD HH:MM:SS.fffffff',
-- datetimeoffset with ' +HH:MM' in UTC, time 'HH:MM:SS.fffffff' since midnight), truncating the
-- 100 ns digit; NULL for any other spelling. Plain SQL, so a query over every row stays fast.
-- Only immutable calls (make_date, not text::timestamp, whose result depends on DateStyle), so
-- PostgreSQL inlines it.
CREATE FUNCTION _sim.canonical_seconds(s text) RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
  SELECT (make_date(substr(s, 1, 4)::int, substr(s, 6, 2)::int, substr(s, 9, 2)::int) - make_date(1970, 1, 1))::bigint * 86400
       + substr(s, 12, 2)::bigint * 3600 + substr(s, 15, 2)::bigint * 60 + substr(s, 18, 2)::bigint $$;
CREATE FUNCTION _sim.micros_canonical(s text) RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE
    WHEN length(s) = 27 AND substr(s, 20, 1) = '.' THEN
      _sim.canonical_seconds(s) * 1000000 + substr(s, 21, 6)::bigint
    WHEN length(s) = 34 AND substr(s, 20, 1) = '.' THEN
      (_sim.canonical_seconds(s)
        - (CASE substr(s, 29, 1) WHEN '-' THEN -1 ELSE 1 END) * (substr(s, 30, 2)::int * 3600 + substr(s, 33, 2)::int * 60))
        * 1000000 + substr(s, 21, 6)::bigint
    WHEN length(s) = 16 AND substr(s, 9, 1) = '.' THEN
      (substr(s, 1, 2)::bigint * 3600 + substr(s, 4, 2)::bigint * 60 + substr(s, 7, 2)::bigint) * 1000000
        + substr(s, 10, 6)::bigint
    END $$;
CREATE FUNCTION _sim.datediff(p text, a text, b text) RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN _sim.part(p) = 'microsecond' AND length(a) = length(b)
                   AND _sim.micros_canonical(a) IS NOT NULL AND _sim.micros_canonical(b) IS NOT NULL
    THEN _sim.micros_canonical(b) - _sim.micros_canonical(a)
    ELSE _sim.datediff_parsed(p, a, b) END $$;
-- Text-stored values keep 100 ns ticks: microseconds count boundaries exactly, as SQL Server's.
CREATE FUNCTION _sim.datediff_parsed(p text, a text, b text) RETURNS bigint LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE x record; y record;
BEGIN
  IF a IS NULL OR b IS NULL THEN RETURN NULL; END IF;
  IF _sim.part(p) = 'microsecond' THEN
    SELECT * INTO x FROM _sim.parse_dt(a, 7);
    SELECT * INTO y FROM _sim.parse_dt(b, 7);
    RETURN ((extract(epoch FROM y.base)::bigint - y.off * 60) - (extract(epoch FROM x.base)::bigint - x.off * 60)) * 1000000
      + (y.ticks / 10 - x.ticks / 10);
  END IF;
  RETURN _sim.datediff(p, _sim.ts(a), _sim.ts(b));
END $$;
CREATE FUNCTION _sim.datediff(p text, a date, b date) RETURNS bigint LANGUAGE sql IMMUTABLE AS $$ SELECT _sim.datediff(p, a::timestamp, b::timestamp) $$;
CREATE FUNCTION _sim.eomonth(t timestamp) RETURNS date LANGUAGE sql IMMUTABLE AS
$$ SELECT (date_trunc('month', t) + interval '1 month' - interval '1 day')::date $$;
CREATE FUNCTION _sim.eomonth(s text) RETURNS date LANGUAGE sql IMMUTABLE AS $$ SELECT _sim.eomonth(_sim.ts(s)) $$;

-- ---------- exact temporal storage ----------
-- datetime2, time and datetimeoffset are stored as canonical text with seven fractional digits,
-- rounded to the column's scale on write (as SQL Server rounds), validated, and so ordered and
-- compared like the values they stand for.
CREATE FUNCTION _sim.parse_dt(s text, sc int, OUT base timestamp, OUT ticks bigint, OUT off int, OUT has_off boolean)
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE m text[]; unit bigint := (10 ^ (7 - sc))::bigint;
BEGIN
  m := regexp_match(btrim(s), '^(?:(\d{4}-\d{1,2}-\d{1,2}|\d{8})(?:[T ]+|$))?(?:(\d{1,2}:\d{2}(?::\d{2})?)(?:\.(\d{0,7}))?)?\s*(Z|[+-]\d{2}:\d{2})?$');
  IF m IS NULL OR (m[1] IS NULL AND m[2] IS NULL) THEN
    RAISE EXCEPTION 'Conversion failed when converting date and/or time from character string.' USING ERRCODE = '22007';
  END IF;
  base := (COALESCE(m[1], '1900-01-01') || ' ' || COALESCE(m[2], '00:00:00'))::timestamp(0);
  ticks := CASE WHEN COALESCE(m[3], '') = '' THEN 0 ELSE rpad(m[3], 7, '0')::bigint END;
  ticks := (ticks + unit / 2) / unit * unit;
  IF ticks >= 10000000 THEN base := base + interval '1 second'; ticks := ticks - 10000000; END IF;
  has_off := m[4] IS NOT NULL;
  off := CASE WHEN m[4] IS NULL OR m[4] = 'Z' THEN 0
    ELSE (CASE left(m[4], 1) WHEN '-' THEN -1 ELSE 1 END) * (substr(m[4], 2, 2)::int * 60 + substr(m[4], 5, 2)::int) END;
  IF abs(off) > 840 THEN
    RAISE EXCEPTION 'The time zone offset must be between -14:00 and +14:00.' USING ERRCODE = '22008';
  END IF;
END $$;

CREATE FUNCTION _sim.out_of_range(t timestamp) RETURNS boolean LANGUAGE sql IMMUTABLE AS
$$ SELECT t < '0001-01-01'::timestamp OR t >= '10000-01-01'::timestamp $$;

CREATE FUNCTION _sim.norm_dt2(s text, sc int) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE p record;
BEGIN
  IF s IS NULL THEN RETURN NULL; END IF;
  p := _sim.parse_dt(s, sc);
  IF _sim.out_of_range(p.base) THEN
    RAISE EXCEPTION 'The conversion of a varchar data type to a datetime2 data type resulted in an out-of-range value.' USING ERRCODE = '22008';
  END IF;
  RETURN to_char(p.base, 'YYYY-MM-DD HH24:MI:SS') || '.' || lpad(p.ticks::text, 7, '0');
END $$;

CREATE FUNCTION _sim.norm_time(s text, sc int) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE p record;
BEGIN
  IF s IS NULL THEN RETURN NULL; END IF;
  p := _sim.parse_dt(s, sc);
  RETURN to_char(p.base, 'HH24:MI:SS') || '.' || lpad(p.ticks::text, 7, '0');
END $$;

CREATE FUNCTION _sim.norm_dto(s text, sc int) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE p record; o int;
BEGIN
  IF s IS NULL THEN RETURN NULL; END IF;
  p := _sim.parse_dt(s, sc);
  IF _sim.out_of_range(p.base - make_interval(mins => p.off)) THEN
    RAISE EXCEPTION 'The conversion of a varchar data type to a datetimeoffset data type resulted in an out-of-range value.' USING ERRCODE = '22008';
  END IF;
  o := abs(p.off);
  RETURN to_char(p.base, 'YYYY-MM-DD HH24:MI:SS') || '.' || lpad(p.ticks::text, 7, '0') || ' '
      || CASE WHEN p.off < 0 THEN '-' ELSE '+' END || lpad((o / 60)::text, 2, '0') || ':' || lpad((o % 60)::text, 2, '0');
END $$;

-- The UTC instant of a stored datetimeoffset, with all seven digits (as text that sorts).
CREATE FUNCTION _sim.dto_utc(s text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE p record;
BEGIN
  IF s IS NULL THEN RETURN NULL; END IF;
  p := _sim.parse_dt(s, 7);
  RETURN to_char(p.base - make_interval(mins => p.off), 'YYYY-MM-DD HH24:MI:SS') || '.' || lpad(p.ticks::text, 7, '0');
END $$;

-- BEFORE INSERT OR UPDATE: arguments are 'kind:scale:column' (kind d = datetime2, t = time,
-- o = datetimeoffset: normalised in place; r = rowversion: the next database rowversion).
CREATE FUNCTION _sim.normalize_row() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE i int := 0; kind text; sc int; col text; rec jsonb := to_jsonb(NEW); patch jsonb := '{}'; v text;
BEGIN
  WHILE i < TG_NARGS LOOP
    kind := split_part(TG_ARGV[i], ':', 1);
    sc := split_part(TG_ARGV[i], ':', 2)::int;
    col := substr(TG_ARGV[i], length(kind) + length(sc::text) + 3);
    v := rec ->> col;
    IF kind = 'r' THEN
      patch := patch || jsonb_build_object(col, nextval('_sim.rowversion'));
    ELSIF v IS NOT NULL THEN
      patch := patch || jsonb_build_object(col, CASE kind WHEN 'd' THEN _sim.norm_dt2(v, sc) WHEN 't' THEN _sim.norm_time(v, sc) ELSE _sim.norm_dto(v, sc) END);
    END IF;
    i := i + 1;
  END LOOP;
  IF patch <> '{}' THEN NEW := jsonb_populate_record(NEW, patch); END IF;
  RETURN NEW;
END $$;

-- (Re)creates a table's normalising trigger from its declared column types; idempotent.
CREATE FUNCTION _sim.refresh_normalizer(t oid) RETURNS void LANGUAGE plpgsql AS $$
DECLARE args text;
BEGIN
  EXECUTE format('DROP TRIGGER IF EXISTS _sim_normalize ON %s', t::regclass);
  SELECT string_agg(quote_literal(CASE WHEN c.type LIKE 'datetime2(%' THEN 'd' WHEN c.type LIKE 'datetimeoffset(%' THEN 'o' WHEN c.type = 'timestamp' THEN 'r' ELSE 't' END
           || ':' || COALESCE(c.scale, 7) || ':' || a.attname), ', ' ORDER BY c.attnum)
    INTO args
    FROM _sim.columns c JOIN pg_attribute a ON a.attrelid = c.table_oid AND a.attnum = c.attnum AND NOT a.attisdropped
   WHERE c.table_oid = t AND (c.type ~ '^(datetime2|datetimeoffset|time)\(' OR c.type = 'timestamp');
  IF args IS NOT NULL THEN
    EXECUTE format('CREATE TRIGGER _sim_normalize BEFORE INSERT OR UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION _sim.normalize_row(%s)', t::regclass, args);
  END IF;
END $$;

-- SQL Server orders uniqueidentifier by bytes 10-15, 8-9, then the first three groups (as stored).
CREATE FUNCTION _sim.guid_key(u uuid) RETURNS bytea LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT substr(b, 11, 6) || substr(b, 9, 2) || substr(b, 8, 1) || substr(b, 7, 1) || substr(b, 6, 1) || substr(b, 5, 1)
      || substr(b, 4, 1) || substr(b, 3, 1) || substr(b, 2, 1) || substr(b, 1, 1)
  FROM (SELECT uuid_send(u) AS b) x $$;

-- MIN/MAX over binary and uniqueidentifier, which T-SQL has and PostgreSQL lacks
-- (uniqueidentifier in SQL Server's order).
CREATE FUNCTION _sim.bytea_smaller(a bytea, b bytea) RETURNS bytea LANGUAGE sql IMMUTABLE STRICT AS $$ SELECT CASE WHEN a <= b THEN a ELSE b END $$;
CREATE FUNCTION _sim.bytea_larger(a bytea, b bytea) RETURNS bytea LANGUAGE sql IMMUTABLE STRICT AS $$ SELECT CASE WHEN a >= b THEN a ELSE b END $$;
CREATE AGGREGATE _sim.min(bytea) (SFUNC = _sim.bytea_smaller, STYPE = bytea);
CREATE AGGREGATE _sim.max(bytea) (SFUNC = _sim.bytea_larger, STYPE = bytea);
CREATE FUNCTION _sim.guid_smaller(a uuid, b uuid) RETURNS uuid LANGUAGE sql IMMUTABLE STRICT AS
$$ SELECT CASE WHEN _sim.guid_key(a) <= _sim.guid_key(b) THEN a ELSE b END $$;
CREATE FUNCTION _sim.guid_larger(a uuid, b uuid) RETURNS uuid LANGUAGE sql IMMUTABLE STRICT AS
$$ SELECT CASE WHEN _sim.guid_key(a) >= _sim.guid_key(b) THEN a ELSE b END $$;
CREATE AGGREGATE _sim.min(uuid) (SFUNC = _sim.guid_smaller, STYPE = uuid);
CREATE AGGREGATE _sim.max(uuid) (SFUNC = _sim.guid_larger, STYPE = uuid);

-- ---------- sys views ----------
CREATE VIEW sys.schemas AS
  SELECT _sim.nm(n.oid, n.nspname) AS name, _sim.schema_id_of(n.oid) AS schema_id, 1 AS principal_id
  FROM pg_namespace n
  WHERE n.nspname NOT LIKE 'pg\_%' AND n.nspname NOT IN ('information_schema', '_sim', 'public');

-- sys.tables.is_tracked_by_cdc: a capture instance exists for the table.
CREATE FUNCTION _sim.tracked_by_cdc(t oid) RETURNS boolean LANGUAGE plpgsql STABLE AS $$
BEGIN
  IF to_regclass('cdc.change_tables') IS NULL THEN RETURN false; END IF;
  RETURN EXISTS (SELECT 1 FROM cdc.change_tables WHERE source_object_id = t::int);
END $$;

CREATE VIEW sys.tables AS
  SELECT _sim.nm(c.oid, c.relname) AS name, c.oid::int AS object_id, NULL::int AS principal_id, _sim.schema_id_of(c.relnamespace) AS schema_id,
         0 AS parent_object_id, 'U '::char(2) AS type, 'USER_TABLE'::varchar(60) AS type_desc,
         t.create_date AS create_date, t.modify_date AS modify_date, false AS is_ms_shipped, false AS is_published,
         false AS is_schema_published, 0 AS lob_data_space_id, false AS is_replicated, false AS has_replication_filter,
         false AS is_merge_published, false AS is_sync_tran_subscribed, false AS has_unchecked_assembly_data,
         0 AS text_in_row_limit, false AS large_value_types_out_of_row, _sim.tracked_by_cdc(c.oid) AS is_tracked_by_cdc,
         0::smallint AS lock_escalation, 'TABLE'::varchar(60) AS lock_escalation_desc, false AS is_filetable,
         false AS is_memory_optimized, 0::smallint AS durability, 'SCHEMA_AND_DATA'::varchar(60) AS durability_desc,
         0::smallint AS temporal_type, 'NON_TEMPORAL_TABLE'::varchar(60) AS temporal_type_desc, NULL::int AS history_table_id,
         false AS is_remote_data_archive_enabled, false AS is_external, false AS is_node, false AS is_edge
  FROM pg_class c JOIN _sim.tables t ON t.oid = c.oid
  WHERE c.relkind IN ('r', 'p');

-- Alias types (sp_addtype, CREATE TYPE ... FROM): shown in sys.types as user-defined.
CREATE TABLE _sim.alias_types (user_type_id int PRIMARY KEY, schema_name text NOT NULL, name text NOT NULL, base text NOT NULL,
    nullable boolean NOT NULL, system_type_id int NOT NULL, max_length int NOT NULL, precision int NOT NULL, scale int NOT NULL);
CREATE SEQUENCE _sim.alias_type_ids START WITH 257;
CREATE FUNCTION _sim.create_alias_type(sch text, nm text, base text, nullable boolean, sys_id int, len int, prec int, sc int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM _sim.alias_types WHERE lower(name) = lower(nm)) OR EXISTS (SELECT 1 FROM sys.types WHERE lower(name) = lower(nm)) THEN
    PERFORM _sim.raise(15180, format('Cannot use the name ''%s''. The type already exists.', nm));
  END IF;
  INSERT INTO _sim.alias_types VALUES (nextval('_sim.alias_type_ids'), sch, nm, base, nullable, sys_id, len, prec, sc);
END $$;
CREATE VIEW sys.types AS
  SELECT name::varchar(128) AS name, system_type_id::smallint AS system_type_id, user_type_id, 4 AS schema_id, NULL::int AS principal_id,
         max_length::smallint AS max_length, precision::smallint AS precision, scale::smallint AS scale,
         CASE WHEN name IN ('char','varchar','nchar','nvarchar','text','ntext','sysname','sql_variant','xml') THEN 'SQL_Latin1_General_CP1_CI_AS' END::varchar(128) AS collation_name,
         true AS is_nullable, false AS is_user_defined, (user_type_id IN (128,129,130)) AS is_assembly_type, 0 AS default_object_id, 0 AS rule_object_id, false AS is_table_type
  FROM (VALUES
    ('bit',104,104,1,1,0), ('tinyint',48,48,1,3,0), ('smallint',52,52,2,5,0), ('int',56,56,4,10,0), ('bigint',127,127,8,19,0),
    ('decimal',106,106,17,38,38), ('numeric',108,108,17,38,38), ('money',60,60,8,19,4), ('smallmoney',122,122,4,10,4),
    ('real',59,59,4,24,0), ('float',62,62,8,53,0), ('date',40,40,3,10,0), ('time',41,41,5,16,7), ('datetime',61,61,8,23,3),
    ('smalldatetime',58,58,4,16,0), ('datetime2',42,42,8,27,7), ('datetimeoffset',43,43,10,34,7), ('char',175,175,8000,0,0),
    ('varchar',167,167,8000,0,0), ('nchar',239,239,8000,0,0), ('nvarchar',231,231,8000,0,0), ('sysname',231,256,256,0,0),
    ('text',35,35,16,0,0), ('ntext',99,99,16,0,0), ('binary',173,173,8000,0,0), ('varbinary',165,165,8000,0,0), ('image',34,34,16,0,0),
    ('uniqueidentifier',36,36,16,0,0), ('xml',241,241,-1,0,0), ('timestamp',189,189,8,0,0), ('sql_variant',98,98,8016,0,0),
    ('hierarchyid',240,128,892,0,0), ('geometry',240,129,-1,0,0), ('geography',240,130,-1,0,0)
  ) AS t(name, system_type_id, user_type_id, max_length, precision, scale)
  UNION ALL
  SELECT a.name::varchar(128), a.system_type_id::smallint, a.user_type_id, _sim.schema_id_of(to_regnamespace(lower(a.schema_name))::oid), NULL::int,
         a.max_length::smallint, a.precision::smallint, a.scale::smallint,
         (CASE WHEN a.system_type_id IN (167, 175, 231, 239, 35, 99) THEN 'SQL_Latin1_General_CP1_CI_AS' END)::varchar(128),
         a.nullable, true, false, 0, 0, false
  FROM _sim.alias_types a;

CREATE VIEW sys.columns AS
  SELECT c.table_oid::int AS object_id, c.name::varchar(128) AS name, a.attnum::int AS column_id,
         c.system_type_id::smallint AS system_type_id, c.user_type_id AS user_type_id, c.max_length::smallint AS max_length,
         c.precision::smallint AS precision, c.scale::smallint AS scale,
         CASE WHEN c.type ~* '^(n?char|n?varchar|n?text)' THEN 'SQL_Latin1_General_CP1_CI_AS' END::varchar(128) AS collation_name,
         (NOT a.attnotnull) AS is_nullable, false AS is_ansi_padded, false AS is_rowguidcol, c.is_identity AS is_identity,
         (a.attgenerated <> '') AS is_computed, false AS is_filestream, false AS is_replicated, false AS is_non_sql_subscribed,
         false AS is_merge_published, false AS is_dts_replicated, false AS is_xml_document, 0 AS xml_collection_id,
         COALESCE(c.default_object_id, 0) AS default_object_id, 0 AS rule_object_id, false AS is_sparse, false AS is_column_set,
         0::smallint AS generated_always_type, 'NOT_APPLICABLE'::varchar(60) AS generated_always_type_desc, false AS is_hidden, false AS is_masked
  FROM _sim.columns c JOIN pg_attribute a ON a.attrelid = c.table_oid AND a.attnum = c.attnum AND NOT a.attisdropped
  JOIN _sim.tables t ON t.oid = c.table_oid;

-- Triggers: the one body the simulator runs is THROW (a write fence; see tsql::parse).
-- SESSION_CONTEXT: sp_set_session_context's keys as session-level settings of the backing
-- connection (one per TDS session), named sim_ctx.<key> with the key folded to [a-z0-9_].
CREATE FUNCTION _sim.session_key(k text) RETURNS text LANGUAGE sql IMMUTABLE AS
$$ SELECT 'sim_ctx.' || regexp_replace(lower(k), '[^a-z0-9_]', '_', 'g') $$;
CREATE FUNCTION _sim.session_context(k text) RETURNS text LANGUAGE sql STABLE AS
$$ SELECT NULLIF(current_setting(_sim.session_key(k), true), '') $$;

-- A fence: THROW, unless the session's context holds the trigger's bypass key and value
-- (`IF SESSION_CONTEXT(N'key') = value RETURN`).
CREATE FUNCTION _sim.throw_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_NARGS > 2 AND _sim.session_context(TG_ARGV[2]) = TG_ARGV[3] THEN
    RETURN NULL;
  END IF;
  RAISE EXCEPTION '%', '[' || TG_ARGV[0] || '] ' || TG_ARGV[1];
END $$;

CREATE FUNCTION _sim.create_trigger(tbl regclass, trig text, original text, or_alter boolean, events text, num int, msg text,
  bypass_key text DEFAULT NULL, bypass_value text DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE other regclass;
BEGIN
  SELECT g.tgrelid::regclass INTO other FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid
   WHERE g.tgname = trig AND NOT g.tgisinternal
     AND c.relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = tbl);
  IF other IS NOT NULL AND (NOT or_alter OR other <> tbl) THEN
    RAISE EXCEPTION '%', format('[2714] There is already an object named ''%s'' in the database.', original);
  END IF;
  IF bypass_key IS NULL THEN
    EXECUTE format('CREATE OR REPLACE TRIGGER %I AFTER %s ON %s FOR EACH STATEMENT EXECUTE FUNCTION _sim.throw_trigger(%L, %L)',
                   trig, events, tbl, num::text, msg);
  ELSE
    EXECUTE format('CREATE OR REPLACE TRIGGER %I AFTER %s ON %s FOR EACH STATEMENT EXECUTE FUNCTION _sim.throw_trigger(%L, %L, %L, %L)',
                   trig, events, tbl, num::text, msg, bypass_key, bypass_value);
  END IF;
  INSERT INTO _sim.names SELECT oid, original FROM pg_trigger WHERE tgrelid = tbl AND tgname = trig
    ON CONFLICT (oid) DO UPDATE SET name = excluded.name;
END $$;

CREATE FUNCTION _sim.drop_trigger(schema_name text, trig text, original text, if_exists boolean)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE tbl regclass;
BEGIN
  SELECT g.tgrelid::regclass INTO tbl FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE g.tgname = trig AND n.nspname = schema_name AND NOT g.tgisinternal;
  IF tbl IS NULL THEN
    IF if_exists THEN RETURN; END IF;
    RAISE EXCEPTION '%', format('[3701] Cannot drop the trigger ''%s'', because it does not exist or you do not have permission.', original);
  END IF;
  EXECUTE format('DROP TRIGGER %I ON %s', trig, tbl);
END $$;

CREATE VIEW sys.triggers AS
  SELECT _sim.nm(g.oid, g.tgname) AS name, g.oid::int AS object_id, 1::smallint AS parent_class,
         'OBJECT_OR_COLUMN'::varchar(60) AS parent_class_desc, g.tgrelid::int AS parent_id, 'TR'::char(2) AS type,
         'SQL_TRIGGER'::varchar(60) AS type_desc, t.create_date, t.modify_date, false AS is_ms_shipped,
         (g.tgenabled = 'D') AS is_disabled, false AS is_not_for_replication, false AS is_instead_of_trigger
  FROM pg_trigger g JOIN _sim.tables t ON t.oid = g.tgrelid
  WHERE NOT g.tgisinternal AND g.tgname NOT LIKE '\_sim\_%';

CREATE TABLE _sim.modules (object_id int PRIMARY KEY DEFAULT nextval('_sim.object_ids'), schema_name text NOT NULL, name text NOT NULL,
    type text NOT NULL, definition text NOT NULL, create_date timestamp NOT NULL DEFAULT localtimestamp(3),
    modify_date timestamp NOT NULL DEFAULT localtimestamp(3));
CREATE UNIQUE INDEX ON _sim.modules (lower(schema_name), lower(name));

CREATE VIEW sys.objects AS
  SELECT name, object_id, principal_id, schema_id, parent_object_id, type, type_desc, create_date, modify_date, is_ms_shipped, false AS is_published, false AS is_schema_published FROM sys.tables
  UNION ALL
  SELECT _sim.nm(k.oid, k.conname), k.oid::int, NULL::int, _sim.schema_id_of(k.connamespace), k.conrelid::int,
         CASE k.contype WHEN 'p' THEN 'PK' WHEN 'u' THEN 'UQ' WHEN 'f' THEN 'F ' ELSE 'C ' END::char(2),
         CASE k.contype WHEN 'p' THEN 'PRIMARY_KEY_CONSTRAINT' WHEN 'u' THEN 'UNIQUE_CONSTRAINT' WHEN 'f' THEN 'FOREIGN_KEY_CONSTRAINT' ELSE 'CHECK_CONSTRAINT' END::varchar(60),
         t.create_date, t.modify_date, false, false, false
  FROM pg_constraint k JOIN _sim.tables t ON t.oid = k.conrelid
  UNION ALL
  SELECT c.default_name::varchar(128), c.default_object_id, NULL::int, _sim.schema_id_of(cl.relnamespace), c.table_oid::int, 'D '::char(2),
         'DEFAULT_CONSTRAINT'::varchar(60), t.create_date, t.modify_date, false, false, false
    FROM _sim.columns c JOIN pg_class cl ON cl.oid = c.table_oid JOIN _sim.tables t ON t.oid = c.table_oid WHERE c.default_object_id IS NOT NULL
  UNION ALL
  SELECT tr.name, tr.object_id, NULL::int, _sim.schema_id_of(cl.relnamespace), tr.parent_id, tr.type, tr.type_desc,
         tr.create_date, tr.modify_date, false, false, false
  FROM sys.triggers tr JOIN pg_class cl ON cl.oid = tr.parent_id
  UNION ALL
  SELECT m.name::varchar(128), m.object_id, NULL::int, _sim.schema_id_of(to_regnamespace(lower(m.schema_name))::oid), 0,
         (CASE m.type WHEN 'P' THEN 'P ' ELSE 'FN' END)::char(2),
         (CASE m.type WHEN 'P' THEN 'SQL_STORED_PROCEDURE' ELSE 'SQL_SCALAR_FUNCTION' END)::varchar(60),
         m.create_date, m.modify_date, false, false, false
  FROM _sim.modules m WHERE m.type NOT IN ('TR', 'V')
  UNION ALL
  SELECT _sim.nm(v.oid, v.relname)::varchar(128), v.oid::int, NULL::int, _sim.schema_id_of(v.relnamespace), 0, 'V '::char(2),
         'VIEW'::varchar(60), localtimestamp(3)::timestamp, localtimestamp(3)::timestamp, false, false, false
  FROM pg_class v JOIN pg_namespace n ON n.oid = v.relnamespace
  WHERE v.relkind = 'v' AND n.nspname NOT IN ('sys', 'information_schema', 'pg_catalog', '_sim', '_sim_is', 'cdc');

CREATE VIEW sys.indexes AS
  SELECT i.indrelid::int AS object_id, _sim.nm(ic.oid, ic.relname) AS name, si.index_id,
         CASE WHEN si.clustered THEN 1 ELSE 2 END::smallint AS type,
         CASE WHEN si.clustered THEN 'CLUSTERED' ELSE 'NONCLUSTERED' END::varchar(60) AS type_desc,
         i.indisunique AS is_unique, 1 AS data_space_id, false AS ignore_dup_key, i.indisprimary AS is_primary_key,
         (k.contype = 'u') IS TRUE AS is_unique_constraint, 0::smallint AS fill_factor, false AS is_padded, false AS is_disabled,
         false AS is_hypothetical, true AS allow_row_locks, true AS allow_page_locks, (i.indpred IS NOT NULL) AS has_filter,
         si.filter::varchar(4000) AS filter_definition
  FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN _sim.indexes si ON si.index_oid = i.indexrelid
  LEFT JOIN pg_constraint k ON k.conindid = i.indexrelid AND k.contype IN ('p', 'u');

CREATE VIEW sys.index_columns AS
  SELECT i.indrelid::int AS object_id, si.index_id, k.n::int AS index_column_id, k.attnum::int AS column_id,
         CASE WHEN k.n <= i.indnkeyatts THEN k.n ELSE 0 END::smallint AS key_ordinal, 0::smallint AS partition_ordinal,
         CASE WHEN k.n <= i.indnkeyatts THEN (i.indoption[k.n - 1] & 1) = 1 ELSE false END AS is_descending_key,
         (k.n > i.indnkeyatts) AS is_included_column, 0::smallint AS column_store_order_ordinal
  FROM pg_index i JOIN _sim.indexes si ON si.index_oid = i.indexrelid
  CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n);

CREATE VIEW sys.key_constraints AS
  SELECT _sim.nm(k.oid, k.conname) AS name, k.oid::int AS object_id, NULL::int AS principal_id, _sim.schema_id_of(k.connamespace) AS schema_id,
         k.conrelid::int AS parent_object_id, CASE k.contype WHEN 'p' THEN 'PK' ELSE 'UQ' END::char(2) AS type,
         CASE k.contype WHEN 'p' THEN 'PRIMARY_KEY_CONSTRAINT' ELSE 'UNIQUE_CONSTRAINT' END::varchar(60) AS type_desc,
         si.index_id AS unique_index_id, false AS is_system_named, true AS is_enforced
  FROM pg_constraint k JOIN _sim.indexes si ON si.index_oid = k.conindid WHERE k.contype IN ('p', 'u');

CREATE VIEW sys.foreign_keys AS
  SELECT _sim.nm(k.oid, k.conname) AS name, k.oid::int AS object_id, NULL::int AS principal_id, _sim.schema_id_of(k.connamespace) AS schema_id,
         k.conrelid::int AS parent_object_id, 'F '::char(2) AS type, 'FOREIGN_KEY_CONSTRAINT'::varchar(60) AS type_desc,
         k.confrelid::int AS referenced_object_id, ri.index_id AS key_index_id, false AS is_disabled, false AS is_not_for_replication,
         (NOT k.convalidated) AS is_not_trusted,
         CASE k.confdeltype WHEN 'c' THEN 1 WHEN 'n' THEN 2 WHEN 'd' THEN 3 ELSE 0 END::smallint AS delete_referential_action,
         CASE k.confdeltype WHEN 'c' THEN 'CASCADE' WHEN 'n' THEN 'SET_NULL' WHEN 'd' THEN 'SET_DEFAULT' ELSE 'NO_ACTION' END::varchar(60) AS delete_referential_action_desc,
         CASE k.confupdtype WHEN 'c' THEN 1 WHEN 'n' THEN 2 WHEN 'd' THEN 3 ELSE 0 END::smallint AS update_referential_action,
         CASE k.confupdtype WHEN 'c' THEN 'CASCADE' WHEN 'n' THEN 'SET_NULL' WHEN 'd' THEN 'SET_DEFAULT' ELSE 'NO_ACTION' END::varchar(60) AS update_referential_action_desc,
         false AS is_system_named
  FROM pg_constraint k LEFT JOIN _sim.indexes ri ON ri.index_oid = k.conindid WHERE k.contype = 'f';

-- CHECK constraints; the definition is the T-SQL text kept as the constraint's comment. The
-- simulator's own range checks (_sim_*) are not SQL Server constraints.
CREATE VIEW sys.check_constraints AS
  SELECT _sim.nm(k.oid, k.conname) AS name, k.oid::int AS object_id, NULL::int AS principal_id, _sim.schema_id_of(k.connamespace) AS schema_id,
         k.conrelid::int AS parent_object_id, 'C '::char(2) AS type, 'CHECK_CONSTRAINT'::varchar(60) AS type_desc,
         false AS is_disabled, false AS is_not_for_replication, (NOT k.convalidated) AS is_not_trusted,
         (CASE WHEN array_length(k.conkey, 1) = 1 THEN k.conkey[1] ELSE 0 END)::int AS parent_column_id,
         COALESCE(obj_description(k.oid, 'pg_constraint'), '(' || pg_get_expr(k.conbin, k.conrelid) || ')')::varchar(4000) AS definition,
         false AS uses_database_collation, false AS is_system_named
  FROM pg_constraint k JOIN _sim.tables t ON t.oid = k.conrelid
  WHERE k.contype = 'c' AND k.conname NOT LIKE '\_sim\_%';

CREATE VIEW sys.foreign_key_columns AS
  SELECT k.oid::int AS constraint_object_id, x.n::int AS constraint_column_id, k.conrelid::int AS parent_object_id,
         x.parent::int AS parent_column_id, k.confrelid::int AS referenced_object_id, x.ref::int AS referenced_column_id
  FROM pg_constraint k CROSS JOIN LATERAL unnest(k.conkey, k.confkey) WITH ORDINALITY AS x(parent, ref, n)
  WHERE k.contype = 'f';

CREATE VIEW sys.identity_columns AS
  SELECT c.object_id, c.name, c.column_id, c.system_type_id, c.user_type_id, c.max_length, c.precision, c.scale,
         c.is_nullable, c.is_identity, s.seed AS seed_value, s.increment AS increment_value,
         _sim.ident_last(c.object_id::oid) AS last_value, false AS is_not_for_replication
  FROM sys.columns c JOIN _sim.columns s ON s.table_oid = c.object_id::oid AND s.attnum = c.column_id WHERE s.is_identity;

CREATE VIEW sys.default_constraints AS
  SELECT c.default_name::varchar(128) AS name, c.default_object_id AS object_id, NULL::int AS principal_id,
         _sim.schema_id_of(cl.relnamespace) AS schema_id, c.table_oid::int AS parent_object_id, 'D '::char(2) AS type,
         'DEFAULT_CONSTRAINT'::varchar(60) AS type_desc, c.attnum::int AS parent_column_id,
         c.default_definition::varchar(4000) AS definition, false AS is_system_named
  FROM _sim.columns c JOIN pg_class cl ON cl.oid = c.table_oid WHERE c.default_object_id IS NOT NULL;

CREATE VIEW sys.computed_columns AS
  SELECT c.object_id, c.name, c.column_id, c.system_type_id, c.user_type_id, c.max_length, c.precision, c.scale, c.is_nullable,
         COALESCE(sc.computed_definition, pg_get_expr(d.adbin, d.adrelid))::varchar(4000) AS definition,
         COALESCE(sc.is_persisted, true) AS is_persisted
  FROM sys.columns c JOIN pg_attrdef d ON d.adrelid = c.object_id::oid AND d.adnum = c.column_id
  LEFT JOIN _sim.columns sc ON sc.table_oid = c.object_id::oid AND sc.attnum = c.column_id WHERE c.is_computed;

CREATE VIEW sys.partitions AS
  SELECT (c.oid::bigint * 1000 + COALESCE(si.index_id, 0)) AS partition_id, c.oid::int AS object_id, COALESCE(si.index_id, 0) AS index_id,
         1 AS partition_number, (c.oid::bigint * 1000) AS hobt_id,
         GREATEST(c.reltuples, COALESCE(st.n_live_tup, 0), 0)::bigint AS rows, 0::smallint AS data_compression,
         'NONE'::varchar(60) AS data_compression_desc
  FROM pg_class c JOIN _sim.tables t ON t.oid = c.oid
  LEFT JOIN (SELECT table_oid, min(index_id) AS index_id FROM _sim.indexes WHERE index_id <= 1 GROUP BY table_oid) si ON si.table_oid = c.oid
  LEFT JOIN pg_stat_user_tables st ON st.relid = c.oid;

CREATE VIEW sys.databases AS
  SELECT name::varchar(128) AS name, database_id, NULL::bytea AS owner_sid, create_date, 160::smallint AS compatibility_level,
         'SQL_Latin1_General_CP1_CI_AS'::varchar(128) AS collation_name, 0::smallint AS user_access, 'MULTI_USER'::varchar(60) AS user_access_desc,
         false AS is_read_only, 0::smallint AS state, 'ONLINE'::varchar(60) AS state_desc,
         (CASE WHEN snapshot_isolation THEN 1 ELSE 0 END)::smallint AS snapshot_isolation_state,
         (CASE WHEN snapshot_isolation THEN 'ON' ELSE 'OFF' END)::varchar(60) AS snapshot_isolation_state_desc,
         read_committed_snapshot AS is_read_committed_snapshot_on, 1::smallint AS recovery_model, 'FULL'::varchar(60) AS recovery_model_desc,
         is_cdc_enabled, false AS is_encrypted
  FROM _sim.databases;

-- ---------- INFORMATION_SCHEMA ----------
CREATE VIEW _sim_is.tables AS
  SELECT current_setting('sim.database', true)::varchar(128) AS table_catalog, s.name AS table_schema, t.name AS table_name,
         'BASE TABLE'::varchar(10) AS table_type
  FROM sys.tables t JOIN sys.schemas s ON s.schema_id = t.schema_id;

CREATE VIEW _sim_is.columns AS
  SELECT current_setting('sim.database', true)::varchar(128) AS table_catalog, s.name AS table_schema, t.name AS table_name,
         c.name AS column_name, c.column_id AS ordinal_position, sc.default_definition::varchar(4000) AS column_default,
         (CASE WHEN c.is_nullable THEN 'YES' ELSE 'NO' END)::varchar(3) AS is_nullable,
         (SELECT ty.name FROM sys.types ty WHERE ty.user_type_id = c.user_type_id) AS data_type,
         CASE WHEN sc.type ~* '^n?(var)?char|^n?text|^(var)?binary|^image|^xml' THEN
           CASE WHEN c.max_length = -1 THEN -1 WHEN sc.type ~* '^n(var)?char' THEN c.max_length / 2 ELSE c.max_length END END AS character_maximum_length,
         CASE WHEN sc.type ~* '^n?(var)?char|^n?text|^(var)?binary|^image|^xml' THEN c.max_length::int END AS character_octet_length,
         CASE WHEN c.precision > 0 AND sc.type !~* '^(date|time|datetime|smalldatetime|datetime2|datetimeoffset)' THEN c.precision::smallint END AS numeric_precision,
         CASE WHEN c.precision > 0 AND sc.type !~* '^(date|time|datetime|smalldatetime|datetime2|datetimeoffset)' THEN (CASE WHEN sc.type ~* '^(real|float)' THEN 2 ELSE 10 END)::smallint END AS numeric_precision_radix,
         CASE WHEN c.precision > 0 AND sc.type !~* '^(date|time|datetime|smalldatetime|datetime2|datetimeoffset|real|float)' THEN c.scale::int END AS numeric_scale,
         CASE WHEN sc.type ~* '^(date|time|datetime|smalldatetime|datetime2|datetimeoffset)' THEN c.scale::smallint END AS datetime_precision,
         CASE WHEN c.collation_name IS NOT NULL THEN (CASE WHEN sc.type ~* '^n' THEN 'UNICODE' ELSE 'iso_1' END) END::varchar(128) AS character_set_name,
         c.collation_name AS collation_name
  FROM sys.columns c JOIN sys.tables t ON t.object_id = c.object_id JOIN sys.schemas s ON s.schema_id = t.schema_id
  JOIN _sim.columns sc ON sc.table_oid = c.object_id::oid AND sc.attnum = c.column_id;

CREATE VIEW _sim_is.table_constraints AS
  SELECT current_setting('sim.database', true)::varchar(128) AS constraint_catalog, s.name AS constraint_schema, _sim.nm(k.oid, k.conname) AS constraint_name,
         current_setting('sim.database', true)::varchar(128) AS table_catalog, s.name AS table_schema, t.name AS table_name,
         (CASE k.contype WHEN 'p' THEN 'PRIMARY KEY' WHEN 'u' THEN 'UNIQUE' WHEN 'f' THEN 'FOREIGN KEY' ELSE 'CHECK' END)::varchar(11) AS constraint_type,
         'NO'::varchar(2) AS is_deferrable, 'NO'::varchar(2) AS initially_deferred
  FROM pg_constraint k JOIN sys.tables t ON t.object_id = k.conrelid::int JOIN sys.schemas s ON s.schema_id = t.schema_id
  WHERE k.contype IN ('p', 'u', 'f', 'c') AND NOT (k.contype = 'c' AND k.conname LIKE '\_sim\_%');

CREATE VIEW _sim_is.key_column_usage AS
  SELECT current_setting('sim.database', true)::varchar(128) AS constraint_catalog, s.name AS constraint_schema, _sim.nm(k.oid, k.conname) AS constraint_name,
         current_setting('sim.database', true)::varchar(128) AS table_catalog, s.name AS table_schema, t.name AS table_name,
         sc.name::varchar(128) AS column_name, x.n::int AS ordinal_position
  FROM pg_constraint k CROSS JOIN LATERAL unnest(k.conkey) WITH ORDINALITY AS x(attnum, n)
  JOIN sys.tables t ON t.object_id = k.conrelid::int JOIN sys.schemas s ON s.schema_id = t.schema_id
  JOIN _sim.columns sc ON sc.table_oid = k.conrelid AND sc.attnum = x.attnum
  WHERE k.contype IN ('p', 'u', 'f');

CREATE VIEW _sim_is.views AS
  SELECT current_setting('sim.database', true)::varchar(128) AS table_catalog, _sim.nm(n.oid, n.nspname)::varchar(128) AS table_schema,
         _sim.nm(v.oid, v.relname)::varchar(128) AS table_name,
         (SELECT left(m.definition, 4000) FROM _sim.modules m WHERE m.object_id = v.oid::int)::varchar(4000) AS view_definition,
         'NONE'::varchar(7) AS check_option, 'NO'::varchar(2) AS is_updatable
  FROM pg_class v JOIN pg_namespace n ON n.oid = v.relnamespace
  WHERE v.relkind = 'v' AND n.nspname NOT IN ('sys', 'information_schema', 'pg_catalog', '_sim', '_sim_is', 'cdc');

CREATE VIEW _sim_is.referential_constraints AS
  SELECT current_setting('sim.database', true)::varchar(128) AS constraint_catalog, s.name AS constraint_schema, _sim.nm(k.oid, k.conname) AS constraint_name,
         current_setting('sim.database', true)::varchar(128) AS unique_constraint_catalog, us.name AS unique_constraint_schema,
         _sim.nm(u.oid, u.conname) AS unique_constraint_name, 'SIMPLE'::varchar(7) AS match_option,
         (CASE k.confupdtype WHEN 'c' THEN 'CASCADE' WHEN 'n' THEN 'SET NULL' WHEN 'd' THEN 'SET DEFAULT' ELSE 'NO ACTION' END)::varchar(11) AS update_rule,
         (CASE k.confdeltype WHEN 'c' THEN 'CASCADE' WHEN 'n' THEN 'SET NULL' WHEN 'd' THEN 'SET DEFAULT' ELSE 'NO ACTION' END)::varchar(11) AS delete_rule
  FROM pg_constraint k JOIN sys.tables t ON t.object_id = k.conrelid::int JOIN sys.schemas s ON s.schema_id = t.schema_id
  JOIN pg_constraint u ON u.conindid = k.conindid AND u.conrelid = k.confrelid AND u.contype IN ('p', 'u')
  JOIN sys.tables ut ON ut.object_id = u.conrelid::int JOIN sys.schemas us ON us.schema_id = ut.schema_id
  WHERE k.contype = 'f';

-- Declared types of the views' columns, so results from sys.* and INFORMATION_SCHEMA carry
-- SQL Server's types and (for INFORMATION_SCHEMA) upper-case names.
INSERT INTO _sim.columns (table_oid, attnum, name, type)
SELECT c.oid, a.attnum, CASE WHEN n.nspname = '_sim_is' THEN upper(a.attname) ELSE a.attname END,
  CASE WHEN n.nspname = 'sys' AND a.attname IN ('precision', 'scale') THEN 'tinyint' ELSE
  CASE ty.typname WHEN 'bool' THEN 'bit' WHEN 'int2' THEN 'smallint' WHEN 'int4' THEN 'int' WHEN 'int8' THEN 'bigint'
    WHEN 'oid' THEN 'int' WHEN 'numeric' THEN 'decimal(38,0)'
    WHEN 'varchar' THEN CASE WHEN a.atttypmod > 4 THEN 'nvarchar(' || (a.atttypmod - 4) || ')' ELSE 'nvarchar(max)' END
    WHEN 'bpchar' THEN 'char(' || GREATEST(a.atttypmod - 4, 1) || ')' WHEN 'timestamp' THEN 'datetime'
    WHEN 'bytea' THEN 'varbinary(max)' WHEN 'name' THEN 'nvarchar(128)' WHEN 'date' THEN 'date' ELSE 'nvarchar(max)' END END
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 JOIN pg_type ty ON ty.oid = a.atttypid
WHERE n.nspname IN ('sys', '_sim_is') AND c.relkind = 'v';

-- bit compares with integers (`WHERE is_ms_shipped = 0`): sys views expose PostgreSQL booleans.
CREATE FUNCTION _sim.bool_eq_int(a boolean, b integer) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$ SELECT a = (b <> 0) $$;
CREATE FUNCTION _sim.bool_ne_int(a boolean, b integer) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$ SELECT a <> (b <> 0) $$;
CREATE FUNCTION _sim.int_eq_bool(b integer, a boolean) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$ SELECT a = (b <> 0) $$;
CREATE FUNCTION _sim.int_ne_bool(b integer, a boolean) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$ SELECT a <> (b <> 0) $$;
CREATE OPERATOR dbo.= (LEFTARG = boolean, RIGHTARG = integer, FUNCTION = _sim.bool_eq_int, COMMUTATOR = OPERATOR(dbo.=), NEGATOR = OPERATOR(dbo.<>));
CREATE OPERATOR dbo.<> (LEFTARG = boolean, RIGHTARG = integer, FUNCTION = _sim.bool_ne_int, COMMUTATOR = OPERATOR(dbo.<>), NEGATOR = OPERATOR(dbo.=));
CREATE OPERATOR dbo.= (LEFTARG = integer, RIGHTARG = boolean, FUNCTION = _sim.int_eq_bool, COMMUTATOR = OPERATOR(dbo.=), NEGATOR = OPERATOR(dbo.<>));
CREATE OPERATOR dbo.<> (LEFTARG = integer, RIGHTARG = boolean, FUNCTION = _sim.int_ne_bool, COMMUTATOR = OPERATOR(dbo.<>), NEGATOR = OPERATOR(dbo.=));

-- SQL Server 2000's compatibility views, as old scripts test them (IF EXISTS (SELECT * FROM
-- sysobjects WHERE id = object_id('...') AND sysstat & 0xf = 4)).
CREATE VIEW sys.sysdatabases AS
  SELECT name::varchar(128) AS name, database_id::smallint AS dbid, NULL::bytea AS sid, 0::smallint AS mode, 0 AS status, 0 AS status2,
         create_date AS crdate, create_date AS reserved, 0 AS category, 160::smallint AS cmptlevel, NULL::varchar(260) AS filename, 611::smallint AS version
  FROM sys.databases;
CREATE VIEW sys.sysobjects AS
  SELECT o.name::varchar(128) AS name, o.object_id AS id, rtrim(o.type)::char(2) AS xtype, o.schema_id::smallint AS uid, 0::smallint AS info, 0 AS status,
         0 AS base_schema_ver, 0 AS replinfo, o.parent_object_id AS parent_obj, o.create_date AS crdate, 0::smallint AS ftcatid, 0 AS schema_ver,
         0 AS stats_schema_ver, rtrim(o.type)::char(2) AS type, 0::smallint AS userstat,
         (CASE rtrim(o.type) WHEN 'U' THEN 3 WHEN 'V' THEN 2 WHEN 'P' THEN 4 WHEN 'TR' THEN 8 ELSE 0 END)::smallint AS sysstat,
         0::smallint AS indexdel, o.modify_date AS refdate, 0 AS version, 0 AS deltrig, 0 AS instrig, 0 AS updtrig, 0 AS seltrig, 0 AS category, 0::smallint AS cache
  FROM sys.objects o;
CREATE VIEW sys.syscolumns AS
  SELECT c.name::varchar(128) AS name, c.object_id AS id, c.system_type_id::smallint AS xtype, 0::smallint AS typestat, c.user_type_id::smallint AS xusertype,
         c.max_length::smallint AS length, c.column_id::smallint AS colid, c.column_id::smallint AS colorder, c.precision::smallint AS xprec,
         c.scale::smallint AS xscale, c.is_nullable::int AS isnullable, c.is_computed::int AS iscomputed
  FROM sys.columns c;
CREATE VIEW sys.sysindexes AS
  SELECT i.object_id AS id, i.index_id::smallint AS indid, i.name::varchar(128) AS name, 0 AS status, 0::bigint AS rows, 0::bigint AS rowcnt
  FROM sys.indexes i;
CREATE VIEW sys.systypes AS
  SELECT name, system_type_id::smallint AS xtype, user_type_id::smallint AS xusertype, max_length AS length, precision AS prec, scale
  FROM sys.types;

-- ALTER TABLE t {CHECK | NOCHECK} CONSTRAINT {ALL | names}: a foreign key not checked has its
-- constraint triggers disabled (on both tables); CHECK constraints stay enforced (PostgreSQL
-- cannot switch one off).
CREATE FUNCTION _sim.fk_checking(t oid, enable boolean, names text[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE r record;
BEGIN
  FOR r IN SELECT tg.tgrelid::regclass AS rel, tg.tgname FROM pg_trigger tg JOIN pg_constraint k ON k.oid = tg.tgconstraint
            WHERE k.conrelid = t AND k.contype = 'f' AND (names IS NULL OR lower(k.conname) = ANY (names)) LOOP
    EXECUTE format('ALTER TABLE %s %s TRIGGER %I', r.rel, CASE WHEN enable THEN 'ENABLE' ELSE 'DISABLE' END, r.tgname);
  END LOOP;
END $$;

-- Procedures and functions: their text for catalog readers (sys.sql_modules, sys.procedures,
-- sys.objects); the simulator runs no procedural bodies.

CREATE FUNCTION _sim.create_module(sch text, nm text, ty text, def text, or_alter boolean) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM _sim.modules WHERE lower(schema_name) = lower(sch) AND lower(name) = lower(nm)) THEN
    IF NOT or_alter THEN
      PERFORM _sim.raise(2714, format('There is already an object named ''%s'' in the database.', nm));
    END IF;
    UPDATE _sim.modules SET definition = def, modify_date = localtimestamp(3) WHERE lower(schema_name) = lower(sch) AND lower(name) = lower(nm);
    RETURN;
  END IF;
  INSERT INTO _sim.modules (schema_name, name, type, definition) VALUES (sch, nm, ty, def);
END $$;
CREATE FUNCTION _sim.drop_module(sch text, nm text, ty text, if_exists boolean) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM _sim.modules WHERE lower(schema_name) = lower(sch) AND lower(name) = lower(nm) AND type = ty;
  IF NOT FOUND AND NOT if_exists THEN
    PERFORM _sim.raise(3701, format('Cannot drop the %s ''%s'', because it does not exist or you do not have permission.',
      CASE ty WHEN 'P' THEN 'procedure' ELSE 'function' END, nm));
  END IF;
END $$;
CREATE VIEW sys.sql_modules AS
  SELECT object_id, definition::varchar AS definition, true AS uses_ansi_nulls, true AS uses_quoted_identifier, false AS is_schema_bound
  FROM _sim.modules m WHERE m.type NOT IN ('V', 'TR') OR EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = m.object_id::oid)
     OR EXISTS (SELECT 1 FROM pg_trigger g WHERE g.oid = m.object_id::oid);
CREATE VIEW sys.views AS
  SELECT _sim.nm(v.oid, v.relname)::varchar(128) AS name, v.oid::int AS object_id, NULL::int AS principal_id,
         _sim.schema_id_of(v.relnamespace) AS schema_id, 0 AS parent_object_id, 'V '::char(2) AS type, 'VIEW'::varchar(60) AS type_desc,
         localtimestamp(3)::timestamp AS create_date, localtimestamp(3)::timestamp AS modify_date, false AS is_ms_shipped,
         false AS is_published, false AS is_schema_published, false AS with_check_option
  FROM pg_class v JOIN pg_namespace n ON n.oid = v.relnamespace
  WHERE v.relkind = 'v' AND n.nspname NOT IN ('sys', 'information_schema', 'pg_catalog', '_sim', '_sim_is', 'cdc');
CREATE VIEW sys.procedures AS
  SELECT name::varchar(128) AS name, object_id, NULL::int AS principal_id, _sim.schema_id_of(to_regnamespace(lower(schema_name))::oid) AS schema_id,
         0 AS parent_object_id, 'P '::char(2) AS type, 'SQL_STORED_PROCEDURE'::varchar(60) AS type_desc, create_date, modify_date,
         false AS is_ms_shipped
  FROM _sim.modules WHERE type = 'P';

-- A trigger whose body the simulator cannot run: a disabled PostgreSQL trigger (so sys.triggers
-- lists it with is_disabled = 1) and its text in sys.sql_modules.
CREATE FUNCTION _sim.store_trigger(tbl regclass, trig text, original text, or_alter boolean, events text, sch text, def text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE id oid;
BEGIN
  PERFORM _sim.create_trigger(tbl, trig, original, or_alter, events, 50000, 'not run by the simulator');
  EXECUTE format('ALTER TABLE %s DISABLE TRIGGER %I', tbl, trig);
  SELECT oid INTO id FROM pg_trigger WHERE tgrelid = tbl AND tgname = trig;
  DELETE FROM _sim.modules WHERE object_id = id::int;
  INSERT INTO _sim.modules (object_id, schema_name, name, type, definition) VALUES (id::int, sch, original, 'TR', def);
END $$;

-- OBJECT_ID finds procedures and functions too.
CREATE OR REPLACE FUNCTION _sim.object_id(s text) RETURNS int LANGUAGE plpgsql STABLE AS $$
DECLARE p text[] := _sim.parse_name(s); n int := array_length(p, 1); r int;
BEGIN
  r := _sim.regclass_of(s)::int;
  IF r IS NOT NULL OR n IS NULL THEN RETURN r; END IF;
  RETURN (SELECT m.object_id FROM _sim.modules m WHERE lower(m.name) = lower(p[n])
            AND lower(m.schema_name) = lower(CASE WHEN n > 1 AND p[n-1] <> '' THEN p[n-1] ELSE 'dbo' END));
END $$;
CREATE OR REPLACE FUNCTION _sim.object_id(s text, t text) RETURNS int LANGUAGE sql STABLE AS $$ SELECT _sim.object_id(s) $$;

-- After explicit values under SET IDENTITY_INSERT ON: the identity continues after the largest.
CREATE FUNCTION _sim.identity_catch_up(t regclass) RETURNS void LANGUAGE plpgsql AS $$
DECLARE col text; seq text; m numeric; last numeric; called boolean;
BEGIN
  SELECT a.attname INTO col FROM pg_attribute a WHERE a.attrelid = t AND a.attidentity <> '' AND NOT a.attisdropped;
  IF col IS NULL THEN RETURN; END IF;
  seq := pg_get_serial_sequence(t::text, col);
  EXECUTE format('SELECT max(%I) FROM %s', col, t) INTO m;
  EXECUTE format('SELECT last_value, is_called FROM %s', seq) INTO last, called;
  IF m IS NOT NULL AND (NOT called OR m > last) THEN
    PERFORM setval(seq, m::bigint, true);
  END IF;
END $$;



-- sp_addextendedproperty and sys.extended_properties (MS_Description and friends).
CREATE TABLE _sim.extended_properties (class int NOT NULL, major_id int NOT NULL, minor_id int NOT NULL, name text NOT NULL, value text,
    PRIMARY KEY (class, major_id, minor_id, name));
CREATE FUNCTION _sim.add_extended_property(prop text, val text, t0 text, n0 text, t1 text, n1 text, t2 text, n2 text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE cls int := 0; major int := 0; minor int := 0;
BEGIN
  IF t1 IS NOT NULL THEN
    cls := 1;
    major := _sim.object_id(format('[%s].[%s]', replace(COALESCE(n0, 'dbo'), ']', ']]'), replace(n1, ']', ']]')));
    IF major IS NULL THEN
      PERFORM _sim.raise(15135, format('Object is invalid. Extended properties are not permitted on ''%s.%s'', or the object does not exist.', n0, n1));
    END IF;
    IF t2 IS NOT NULL THEN
      SELECT sc.attnum INTO minor FROM _sim.columns sc WHERE sc.table_oid = major::oid AND lower(sc.name) = lower(n2);
      IF minor IS NULL THEN
        PERFORM _sim.raise(15135, format('Object is invalid. Extended properties are not permitted on ''%s.%s.%s'', or the object does not exist.', n0, n1, n2));
      END IF;
    END IF;
  ELSIF t0 IS NOT NULL THEN
    cls := 3;
    major := _sim.schema_id_of(to_regnamespace(lower(n0))::oid);
  END IF;
  IF EXISTS (SELECT 1 FROM _sim.extended_properties WHERE class = cls AND major_id = major AND minor_id = minor AND name = prop) THEN
    PERFORM _sim.raise(15233, format('Property cannot be added. Property ''%s'' already exists for ''%s''.', prop, COALESCE(n2, n1, n0, 'the database')));
  END IF;
  INSERT INTO _sim.extended_properties VALUES (cls, major, minor, prop, val);
END $$;
CREATE VIEW sys.extended_properties AS
  SELECT class::smallint AS class, (CASE class WHEN 0 THEN 'DATABASE' WHEN 1 THEN 'OBJECT_OR_COLUMN' ELSE 'SCHEMA' END)::varchar(60) AS class_desc,
         major_id, minor_id, name::varchar(128) AS name, value::varchar(7500) AS value
  FROM _sim.extended_properties;

-- sys.sequences (CREATE SEQUENCE runs on PostgreSQL's sequences).
CREATE VIEW sys.sequences AS
  SELECT _sim.nm(c.oid, c.relname)::varchar(128) AS name, c.oid::int AS object_id, _sim.schema_id_of(c.relnamespace) AS schema_id,
         'SO'::char(2) AS type, 'SEQUENCE_OBJECT'::varchar(60) AS type_desc, s.seqstart::numeric AS start_value, s.seqincrement::numeric AS increment,
         s.seqmin::numeric AS minimum_value, s.seqmax::numeric AS maximum_value, s.seqcycle AS is_cycling,
         COALESCE(ps.last_value, s.seqstart)::numeric AS current_value
  FROM pg_class c JOIN pg_sequence s ON s.seqrelid = c.oid JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_sequences ps ON ps.schemaname = n.nspname AND ps.sequencename = c.relname
  WHERE c.relkind = 'S' AND n.nspname NOT IN ('_sim', 'pg_catalog', 'sys', 'cdc')
    AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i'));
