"""The sources stage: which documents a night reads, and tonight's version of those on
GitHub (`fetch`), before extraction. Local files are read by the links stage as before."""
