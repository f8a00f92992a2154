//! docker-compose import (placeholder until written).
