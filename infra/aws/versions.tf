terraform {
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0, < 6.0"
    }
  }
}

# Credentials come from the environment (AWS_PROFILE, instance role...): never from phoenix.
provider "aws" {
  region = var.region

  default_tags {
    tags = {
      "phoenix:fleet" = var.fleet
    }
  }
}
