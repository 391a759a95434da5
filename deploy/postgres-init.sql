-- Each service owns its database; the registry uses the default one.
CREATE DATABASE featuregate OWNER ghconnect;
