-- Where the incremental phone normalization of one region resumes: the newest contacts.updated_at it has seen.
SELECT max(source_updated_at) FROM contact_phones WHERE region = %(region)s;
