"""Transaction files (`retention analyze` input) read and checked cell by cell with pyarrow."""
