-- The sample database of docker/compose.yaml: snapshot isolation, Change Tracking on two tables,
-- CDC on a third. tests/docker.rs runs this file against mssql-sim, so it stays T-SQL that both
-- SQL Server 2022 and the simulator accept.
CREATE DATABASE shop;
GO
ALTER DATABASE shop SET ALLOW_SNAPSHOT_ISOLATION ON;
ALTER DATABASE shop SET CHANGE_TRACKING = ON (CHANGE_RETENTION = 2 DAYS, AUTO_CLEANUP = ON);
GO
USE shop;
GO
EXEC sys.sp_cdc_enable_db;
GO
CREATE TABLE dbo.customers (
    id int IDENTITY(1,1) NOT NULL PRIMARY KEY,
    name nvarchar(100) NOT NULL,
    email varchar(200) NULL,
    created_at datetime2(3) NOT NULL DEFAULT SYSUTCDATETIME()
);
CREATE TABLE dbo.orders (
    id bigint IDENTITY(1,1) NOT NULL PRIMARY KEY,
    customer_id int NOT NULL CONSTRAINT fk_orders_customers REFERENCES dbo.customers (id),
    total decimal(12,2) NOT NULL,
    status varchar(20) NOT NULL,
    placed_at datetime2 NOT NULL
);
CREATE TABLE dbo.order_events (
    order_id bigint NOT NULL,
    seq int NOT NULL,
    note nvarchar(max) NULL,
    CONSTRAINT pk_order_events PRIMARY KEY (order_id, seq)
);
GO
ALTER TABLE dbo.customers ENABLE CHANGE_TRACKING;
ALTER TABLE dbo.orders ENABLE CHANGE_TRACKING WITH (TRACK_COLUMNS_UPDATED = OFF);
GO
EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'order_events', @role_name = NULL;
GO
INSERT INTO dbo.customers (name, email) VALUES (N'Ada', 'ada@example.com'), (N'Grace', NULL), (N'Zoë', 'zoe@example.com');
INSERT INTO dbo.orders (customer_id, total, status, placed_at)
    VALUES (1, 19.99, 'paid', '2026-01-02T03:04:05'), (3, 1234.50, 'new', '2026-02-03T04:05:06');
INSERT INTO dbo.order_events VALUES (1, 1, N'created'), (1, 2, N'paid'), (2, 1, NULL);
GO
