"""The lake-upkeep domain: snapshot expiry, file merging and clean-up as scheduled jobs."""
