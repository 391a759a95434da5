-- Each service owns its database: entrypoint.sh creates the registry's
-- (ghconnect) with the role, then runs this file.
CREATE DATABASE featuregate OWNER ghconnect;
CREATE DATABASE broker OWNER ghconnect;
CREATE DATABASE gateway OWNER ghconnect;
