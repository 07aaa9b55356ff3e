"""What ties the layers into DVC stages: the stage runner, staging and publishing, workers, the Layout of paths."""
