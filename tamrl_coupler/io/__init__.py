"""Files in and out: CF forcing reader, CF flux/prior writers, atomic restart files."""
