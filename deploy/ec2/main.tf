# cloudftpd on one EC2 instance: files in an S3 bucket reached through the
# instance's IAM role (no keys anywhere), an Elastic IP that the server
# reads from instance metadata (passive address "aws"), and a security
# group whose rules are generated from the config:
#   cloudftpd firewall --config cloudftpd.toml --format terraform > firewall/main.tf
# The instance installs the .deb (packaging/build.sh) from package_url.
#
#   terraform init && terraform apply -var vpc_id=vpc-... -var subnet_id=subnet-... \
#       -var ami_id=ami-... -var package_url=https://.../cloudftpd_1.2.3_amd64.deb

terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0"
    }
  }
}

provider "aws" {
  region = var.region
}

resource "aws_s3_bucket" "files" {
  bucket = var.bucket
}

resource "aws_s3_bucket_lifecycle_configuration" "files" {
  bucket = aws_s3_bucket.files.id
  # A server that died mid-upload leaves a multipart upload behind.
  rule {
    id     = "abort-incomplete-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

# The role: exactly the README's S3 permissions, on the config's prefix.
data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "files" {
  statement {
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.files.arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.prefix}*"]
    }
  }
  statement {
    actions = [
      "s3:GetObject", "s3:PutObject", "s3:DeleteObject",
      "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts",
      "s3:PutObjectTagging", "s3:GetObjectTagging",
    ]
    resources = ["${aws_s3_bucket.files.arn}/${var.prefix}*"]
  }
}

resource "aws_iam_role" "cloudftpd" {
  name               = "cloudftpd"
  assume_role_policy = data.aws_iam_policy_document.assume.json
}

resource "aws_iam_role_policy" "files" {
  name   = "cloudftpd-files"
  role   = aws_iam_role.cloudftpd.id
  policy = data.aws_iam_policy_document.files.json
}

resource "aws_iam_instance_profile" "cloudftpd" {
  name = "cloudftpd"
  role = aws_iam_role.cloudftpd.name
}

resource "aws_security_group" "cloudftpd" {
  name        = "cloudftpd"
  description = "cloudftpd: rules from cloudftpd firewall (firewall/main.tf)"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_egress_rule" "all" {
  security_group_id = aws_security_group.cloudftpd.id
  description       = "S3, instance metadata is link-local, package downloads"
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"
}

# The generated rules, as a module: firewall/main.tf is the command's
# output, unedited.
module "firewall" {
  source            = "./firewall"
  security_group_id = aws_security_group.cloudftpd.id
}

resource "aws_instance" "cloudftpd" {
  ami                    = var.ami_id
  instance_type          = var.instance_type
  subnet_id              = var.subnet_id
  vpc_security_group_ids = [aws_security_group.cloudftpd.id]
  iam_instance_profile   = aws_iam_instance_profile.cloudftpd.name

  # IMDSv2 only: cloudftpd's "aws" passive address uses it.
  metadata_options {
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  user_data = templatefile("${path.module}/user-data.sh.tftpl", {
    package_url = var.package_url
    config      = file("${path.module}/cloudftpd.toml")
  })
  user_data_replace_on_change = true

  tags = {
    Name = "cloudftpd"
  }
}

resource "aws_eip" "cloudftpd" {
  domain   = "vpc"
  instance = aws_instance.cloudftpd.id
}
