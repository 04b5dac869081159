output "public_ip" {
  description = "The Elastic IP: ftp://PUBLIC_IP/ for partners"
  value       = aws_eip.cloudftpd.public_ip
}

output "private_ip" {
  value = aws_instance.cloudftpd.private_ip
}
