-- A database made by fieldlink 0.1 (before dispatch plans and escalation), for the
-- migration test: its schema and a few rows, as `sqlite3 .dump` writes them.
BEGIN TRANSACTION;
CREATE TABLE "alarm" ("alarm_id" VARCHAR(64) NOT NULL PRIMARY KEY, "unit_id" VARCHAR(64) NOT NULL, "kind" VARCHAR(16) NOT NULL, "ts" REAL NOT NULL, "lat" REAL, "lon" REAL, "received_at" REAL NOT NULL, "incident_id" VARCHAR(64), FOREIGN KEY ("unit_id") REFERENCES "unit" ("id") ON DELETE CASCADE, FOREIGN KEY ("incident_id") REFERENCES "incident" ("id"));
CREATE TABLE "event" ("id" INTEGER NOT NULL PRIMARY KEY, "ts" REAL NOT NULL, "actor" VARCHAR(64) NOT NULL, "kind" VARCHAR(32) NOT NULL, "incident_id" VARCHAR(64), "unit_id" VARCHAR(64), "order_id" VARCHAR(64), "data" TEXT NOT NULL);
INSERT INTO "event" VALUES(1,1700000001.0,'dispatch','order_sent','inc-1','car-1','ord-1','{}');
CREATE TABLE "incident" ("id" VARCHAR(64) NOT NULL PRIMARY KEY, "category" VARCHAR(32) NOT NULL, "priority" INTEGER NOT NULL, "state" VARCHAR(16) NOT NULL, "lat" REAL, "lon" REAL, "address" TEXT NOT NULL, "summary" TEXT NOT NULL, "reported_by" VARCHAR(64), "created_at" REAL NOT NULL, "dispatched_at" REAL, "on_scene_at" REAL, "resolved_at" REAL, "closed_at" REAL);
INSERT INTO "incident" VALUES('inc-1','urgent',1,'dispatched',31.23,121.47,'','Panic button at Kiosk 1','kiosk-1',1700000000.0,1700000001.0,NULL,NULL,NULL);
CREATE TABLE "order" ("id" VARCHAR(64) NOT NULL PRIMARY KEY, "incident_id" VARCHAR(64) NOT NULL, "unit_id" VARCHAR(64) NOT NULL, "kind" VARCHAR(16) NOT NULL, "state" VARCHAR(16) NOT NULL, "decline_reason" TEXT NOT NULL, "sent_at" REAL NOT NULL, "delivered_at" REAL, "accepted_at" REAL, "declined_at" REAL, "en_route_at" REAL, "on_scene_at" REAL, "cleared_at" REAL, FOREIGN KEY ("incident_id") REFERENCES "incident" ("id") ON DELETE CASCADE, FOREIGN KEY ("unit_id") REFERENCES "unit" ("id") ON DELETE CASCADE);
INSERT INTO "order" VALUES('ord-1','inc-1','car-1','dispatch','accepted','',1700000001.0,1700000002.0,1700000005.0,NULL,NULL,NULL,NULL);
CREATE TABLE "position" ("id" INTEGER NOT NULL PRIMARY KEY, "unit_id" VARCHAR(64) NOT NULL, "ts" REAL NOT NULL, "lat" REAL NOT NULL, "lon" REAL NOT NULL, "speed" REAL, "heading" REAL, "acc" REAL, "alt" REAL, "mode" INTEGER, "received_at" REAL NOT NULL, FOREIGN KEY ("unit_id") REFERENCES "unit" ("id") ON DELETE CASCADE);
INSERT INTO "position" VALUES(1,'car-1',1700000000.0,31.23,121.47,NULL,NULL,NULL,NULL,NULL,1700000000.1);
CREATE TABLE "unit" ("id" VARCHAR(64) NOT NULL PRIMARY KEY, "kind" VARCHAR(16) NOT NULL, "name" VARCHAR(255) NOT NULL, "grid" VARCHAR(255) NOT NULL, "terminal_token" VARCHAR(64) NOT NULL, "status" VARCHAR(16) NOT NULL, "status_since" REAL NOT NULL, "online" INTEGER NOT NULL, "online_since" REAL, "created_at" REAL NOT NULL, "mqtt_password_hash" VARCHAR(255));
INSERT INTO "unit" VALUES('car-1','patrol_car','Car 1','G01','tok-car-1','available',1.79554780531604528427e+09,0,NULL,1.7955478053160471916e+09,NULL);
INSERT INTO "unit" VALUES('kiosk-1','guard_post','Kiosk 1','G01','tok-kiosk-1','available',1.795547805318508625e+09,0,NULL,1.79554780531850934023e+09,NULL);
CREATE INDEX "unit_grid" ON "unit" ("grid");
CREATE UNIQUE INDEX "unit_terminal_token" ON "unit" ("terminal_token");
CREATE INDEX "incident_state" ON "incident" ("state");
CREATE INDEX "alarm_unit_id" ON "alarm" ("unit_id");
CREATE INDEX "alarm_incident_id" ON "alarm" ("incident_id");
CREATE INDEX "event_ts" ON "event" ("ts");
CREATE INDEX "event_incident_id" ON "event" ("incident_id");
CREATE INDEX "order_incident_id" ON "order" ("incident_id");
CREATE INDEX "order_unit_id" ON "order" ("unit_id");
CREATE INDEX "order_state" ON "order" ("state");
CREATE INDEX "position_unit_id" ON "position" ("unit_id");
CREATE UNIQUE INDEX "position_unit_id_ts" ON "position" ("unit_id", "ts");
COMMIT;
