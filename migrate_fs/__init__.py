"""migrate-fs: offline bulk DICOM migration from legacy storage exports to Part 10 folders."""

__version__ = "0.1.0"
