-- Statistics for the temporary candidates table, so the claim is planned for its real size.
ANALYZE claim_candidates;
