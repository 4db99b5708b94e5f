"""Volume drivers (local, bind, tmpfs) arrive with the volume drivers issue."""
