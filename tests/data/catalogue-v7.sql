-- the catalogue schema at version 7 (review, before carried decisions), for the migration test
CREATE TABLE classifications (
	id INTEGER NOT NULL, 
	detection_id INTEGER NOT NULL, 
	model VARCHAR(64) NOT NULL, 
	rank VARCHAR(16) NOT NULL, 
	label VARCHAR(255) NOT NULL, 
	score FLOAT NOT NULL, 
	top_labels JSON NOT NULL, 
	top_scores JSON NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(detection_id) REFERENCES detections (id) ON DELETE CASCADE
);
CREATE TABLE deployments (
	id INTEGER NOT NULL, 
	path TEXT NOT NULL, 
	name VARCHAR(255) NOT NULL, 
	created_at DATETIME NOT NULL, 
	last_scan_at DATETIME, 
	kind VARCHAR(16) NOT NULL, 
	night_cutoff_hour INTEGER NOT NULL, 
	uid VARCHAR(36), 
	site_name VARCHAR(255), 
	latitude FLOAT, 
	longitude FLOAT, 
	coordinate_uncertainty_m FLOAT, 
	clock_utc_offset_min INTEGER, 
	clock_time_zone VARCHAR(64), 
	trap_description TEXT, 
	light_description TEXT, 
	deployment_start DATETIME, 
	deployment_end DATETIME, 
	notes TEXT, 
	PRIMARY KEY (id), 
	UNIQUE (path), 
	UNIQUE (uid)
);
CREATE TABLE detections (
	id INTEGER NOT NULL, 
	image_id INTEGER NOT NULL, 
	pipeline_id INTEGER NOT NULL, 
	run_id INTEGER, 
	x1 FLOAT NOT NULL, 
	y1 FLOAT NOT NULL, 
	x2 FLOAT NOT NULL, 
	y2 FLOAT NOT NULL, 
	score FLOAT NOT NULL, 
	detector VARCHAR(64) NOT NULL, 
	binary_label VARCHAR(64), 
	binary_score FLOAT, 
	top_label VARCHAR(255), 
	top_score FLOAT, 
	top_rank VARCHAR(16), 
	occurrence_id INTEGER, 
	embedding BLOB, 
	sharpness FLOAT, 
	PRIMARY KEY (id), 
	FOREIGN KEY(image_id) REFERENCES images (id) ON DELETE CASCADE, 
	FOREIGN KEY(pipeline_id) REFERENCES pipeline_configs (id) ON DELETE CASCADE, 
	FOREIGN KEY(run_id) REFERENCES processing_runs (id) ON DELETE SET NULL, 
	FOREIGN KEY(occurrence_id) REFERENCES occurrences (id) ON DELETE SET NULL
);
CREATE TABLE images (
	id INTEGER NOT NULL, 
	deployment_id INTEGER NOT NULL, 
	night_id INTEGER, 
	rel_path TEXT NOT NULL, 
	size INTEGER NOT NULL, 
	mtime FLOAT NOT NULL, 
	width INTEGER, 
	height INTEGER, 
	captured_at DATETIME, 
	utc_offset_min INTEGER, 
	time_source VARCHAR(32) NOT NULL, 
	time_error TEXT, 
	state VARCHAR(16) NOT NULL, 
	error TEXT, 
	scanned_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (deployment_id, rel_path), 
	FOREIGN KEY(deployment_id) REFERENCES deployments (id) ON DELETE CASCADE, 
	FOREIGN KEY(night_id) REFERENCES nights (id) ON DELETE SET NULL
);
CREATE TABLE jobs (
	id INTEGER NOT NULL, 
	image_id INTEGER NOT NULL, 
	pipeline_id INTEGER NOT NULL, 
	state VARCHAR(16) NOT NULL, 
	worker VARCHAR(128), 
	lease_expires_at FLOAT, 
	attempts INTEGER NOT NULL, 
	interruptions INTEGER DEFAULT '0' NOT NULL, 
	error TEXT, 
	run_id INTEGER, 
	updated_at FLOAT NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (image_id, pipeline_id), 
	FOREIGN KEY(image_id) REFERENCES images (id) ON DELETE CASCADE, 
	FOREIGN KEY(pipeline_id) REFERENCES pipeline_configs (id) ON DELETE CASCADE, 
	FOREIGN KEY(run_id) REFERENCES processing_runs (id) ON DELETE SET NULL
);
CREATE TABLE morphospecies (
	id INTEGER NOT NULL, 
	name VARCHAR(255) NOT NULL, 
	rank VARCHAR(32) NOT NULL, 
	created_by VARCHAR(255), 
	created_at FLOAT NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (name)
);
CREATE TABLE nights (
	id INTEGER NOT NULL, 
	deployment_id INTEGER NOT NULL, 
	date DATE NOT NULL, 
	start DATETIME, 
	"end" DATETIME, 
	PRIMARY KEY (id), 
	UNIQUE (deployment_id, date), 
	FOREIGN KEY(deployment_id) REFERENCES deployments (id) ON DELETE CASCADE
);
CREATE TABLE occurrences (
	id INTEGER NOT NULL, 
	pipeline_id INTEGER NOT NULL, 
	deployment_id INTEGER NOT NULL, 
	night_id INTEGER, 
	first_image_id INTEGER, 
	last_image_id INTEGER, 
	first_seen DATETIME, 
	last_seen DATETIME, 
	n_detections INTEGER NOT NULL, 
	best_detection_id INTEGER, 
	label VARCHAR(255), 
	label_rank VARCHAR(16), 
	label_score FLOAT, 
	fixture BOOLEAN NOT NULL, 
	fixture_reason TEXT, 
	fixture_reviewed BOOLEAN DEFAULT '0' NOT NULL, 
	fixture_candidate JSON, 
	pinned BOOLEAN NOT NULL, 
	created_by VARCHAR(16) NOT NULL, 
	updated_at FLOAT NOT NULL, 
	review_state VARCHAR(16), 
	review_label VARCHAR(255), 
	review_rank VARCHAR(32), 
	identified_by VARCHAR(255), 
	identified_at DATETIME, 
	reviewed_machine_label VARCHAR(255), 
	reviewed_machine_rank VARCHAR(16), 
	reviewed_machine_score FLOAT, 
	merged_into INTEGER, 
	PRIMARY KEY (id), 
	FOREIGN KEY(pipeline_id) REFERENCES pipeline_configs (id) ON DELETE CASCADE, 
	FOREIGN KEY(deployment_id) REFERENCES deployments (id) ON DELETE CASCADE, 
	FOREIGN KEY(night_id) REFERENCES nights (id) ON DELETE CASCADE, 
	FOREIGN KEY(first_image_id) REFERENCES images (id) ON DELETE SET NULL, 
	FOREIGN KEY(last_image_id) REFERENCES images (id) ON DELETE SET NULL, 
	FOREIGN KEY(best_detection_id) REFERENCES detections (id) ON DELETE SET NULL
);
CREATE TABLE pipeline_configs (
	id INTEGER NOT NULL, 
	"key" VARCHAR(64) NOT NULL, 
	name VARCHAR(255) NOT NULL, 
	config JSON NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE ("key")
);
CREATE TABLE processing_runs (
	id INTEGER NOT NULL, 
	pipeline_id INTEGER NOT NULL, 
	models JSON NOT NULL, 
	devices JSON NOT NULL, 
	settings JSON NOT NULL, 
	app_version VARCHAR(32) NOT NULL, 
	started_at DATETIME NOT NULL, 
	ended_at DATETIME, 
	status VARCHAR(16) NOT NULL, 
	images_done INTEGER NOT NULL, 
	images_failed INTEGER NOT NULL, 
	notes JSON NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(pipeline_id) REFERENCES pipeline_configs (id) ON DELETE CASCADE
);
CREATE TABLE remote_tasks (
	id INTEGER NOT NULL, 
	server TEXT NOT NULL, 
	job_id INTEGER NOT NULL, 
	pipeline_slug VARCHAR(64) NOT NULL, 
	task_id VARCHAR(128) NOT NULL, 
	image_id VARCHAR(128) NOT NULL, 
	image_url TEXT NOT NULL, 
	reply_subject TEXT, 
	state VARCHAR(16) NOT NULL, 
	result JSON, 
	error TEXT, 
	post_attempts INTEGER NOT NULL, 
	local_image_id INTEGER, 
	claimed_at FLOAT NOT NULL, 
	posted_at FLOAT, 
	PRIMARY KEY (id), 
	UNIQUE (server, job_id, pipeline_slug, task_id), 
	FOREIGN KEY(local_image_id) REFERENCES images (id) ON DELETE SET NULL
);
CREATE TABLE review_actions (
	id INTEGER NOT NULL, 
	kind VARCHAR(16) NOT NULL, 
	pipeline_id INTEGER, 
	night_id INTEGER, 
	summary TEXT NOT NULL, 
	changes JSON NOT NULL, 
	"by" VARCHAR(255), 
	at FLOAT NOT NULL, 
	undone BOOLEAN DEFAULT '0' NOT NULL, 
	PRIMARY KEY (id)
);
CREATE TABLE schema_info (
	id INTEGER NOT NULL, 
	version INTEGER NOT NULL, 
	app VARCHAR(32) NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id)
);
CREATE INDEX ix_classifications_detection_id ON classifications (detection_id);
CREATE INDEX ix_detections_binary_score ON detections (binary_score);
CREATE INDEX ix_detections_image_id ON detections (image_id);
CREATE INDEX ix_detections_image_pipeline ON detections (image_id, pipeline_id);
CREATE INDEX ix_detections_occurrence_id ON detections (occurrence_id);
CREATE INDEX ix_detections_pipeline_id ON detections (pipeline_id);
CREATE INDEX ix_detections_run_id ON detections (run_id);
CREATE INDEX ix_detections_score ON detections (score);
CREATE INDEX ix_detections_top_label ON detections (top_label);
CREATE INDEX ix_detections_top_rank ON detections (top_rank);
CREATE INDEX ix_detections_top_score ON detections (top_score);
CREATE INDEX ix_images_deployment_id ON images (deployment_id);
CREATE INDEX ix_images_night_captured ON images (night_id, captured_at);
CREATE INDEX ix_images_night_id ON images (night_id);
CREATE INDEX ix_images_state ON images (state);
CREATE INDEX ix_jobs_image_id ON jobs (image_id);
CREATE INDEX ix_jobs_pipeline_id ON jobs (pipeline_id);
CREATE INDEX ix_jobs_pipeline_state ON jobs (pipeline_id, state);
CREATE INDEX ix_jobs_run_id ON jobs (run_id);
CREATE INDEX ix_jobs_state_lease ON jobs (state, lease_expires_at);
CREATE INDEX ix_jobs_worker ON jobs (worker);
CREATE INDEX ix_nights_deployment_id ON nights (deployment_id);
CREATE INDEX ix_occurrences_deployment_id ON occurrences (deployment_id);
CREATE INDEX ix_occurrences_label ON occurrences (label);
CREATE INDEX ix_occurrences_night_pipeline ON occurrences (night_id, pipeline_id);
CREATE INDEX ix_occurrences_pipeline_id ON occurrences (pipeline_id);
CREATE INDEX ix_occurrences_review_state ON occurrences (review_state);
CREATE INDEX ix_processing_runs_pipeline_id ON processing_runs (pipeline_id);
CREATE INDEX ix_remote_tasks_job_id ON remote_tasks (job_id);
CREATE INDEX ix_remote_tasks_local_image_id ON remote_tasks (local_image_id);
CREATE INDEX ix_remote_tasks_state ON remote_tasks (state);
CREATE INDEX ix_review_actions_night_id ON review_actions (night_id);
INSERT INTO schema_info (id, version, app, created_at) VALUES (1, 7, 'trapgui', '2027-01-10 15:00:00.000000');
