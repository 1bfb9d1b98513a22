package httpapi

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/brokerdev/broker/apierror"
	"github.com/brokerdev/broker/auth"
	"github.com/brokerdev/broker/metadata"
)

// cloudinarySignatureResponse keeps the seed guide's four fields first.
type cloudinarySignatureResponse struct {
	Success  bool   `json:"success"`
	Provider string `json:"provider"`
	metadata.CloudinarySignature
}

func (s *server) generateSignature(c echo.Context) error {
	provider, err := s.chooseProvider(c.QueryParam("provider"))
	if err != nil {
		return err
	}
	resourceType := c.QueryParam("resource_type")
	user := auth.UserID(c)
	switch provider {
	case metadata.ProviderCloudinary:
		sig, err := s.Service.Cloudinary.Sign(user, resourceType)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, cloudinarySignatureResponse{Success: true, Provider: provider, CloudinarySignature: sig})
	case metadata.ProviderUploadcare:
		if resourceType != "" && !listResourceTypes[resourceType] && resourceType != "auto" {
			return apierror.InvalidRequest("resource_type must be image, video, raw or auto")
		}
		sig, err := s.Service.Uploadcare.Sign(user)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, uploadcareSignatureResponse{Success: true, Provider: provider, UploadcareSignature: sig})
	default:
		return apierror.InvalidRequest("provider %q is not configured on this broker", provider)
	}
}

// chooseProvider validates ?provider= and defaults to the first configured
// one, Cloudinary first.
func (s *server) chooseProvider(name string) (string, error) {
	configured := s.configuredProviders()
	if name == "" {
		if len(configured) == 0 {
			return "", apierror.InvalidRequest("no provider is configured on this broker")
		}
		return configured[0], nil
	}
	for _, p := range configured {
		if p == name {
			return p, nil
		}
	}
	if name != metadata.ProviderCloudinary && name != metadata.ProviderUploadcare {
		return "", apierror.InvalidRequest("provider must be cloudinary or uploadcare")
	}
	return "", apierror.InvalidRequest("provider %q is not configured on this broker", name)
}

func (s *server) configuredProviders() []string {
	var out []string
	if s.Service.Cloudinary != nil {
		out = append(out, metadata.ProviderCloudinary)
	}
	if s.Service.Uploadcare != nil {
		out = append(out, metadata.ProviderUploadcare)
	}
	return out
}

type uploadcareSignatureResponse struct {
	Success  bool   `json:"success"`
	Provider string `json:"provider"`
	metadata.UploadcareSignature
}

type fileResponse struct {
	Success bool          `json:"success"`
	File    metadata.File `json:"file"`
}

func (s *server) saveMetadata(c echo.Context) error {
	fields, body, err := readJSONObject(c, s.JSONBodyLimit)
	if err != nil {
		return err
	}
	provider, err := providerOfEvidence(fields)
	if err != nil {
		return err
	}
	user := auth.UserID(c)
	ctx := c.Request().Context()
	var f metadata.File
	var created bool
	switch provider {
	case metadata.ProviderCloudinary:
		var ev metadata.CloudinaryEvidence
		if err := strictUnmarshal(body, &ev); err != nil {
			return err
		}
		f, created, err = s.Service.SaveCloudinary(ctx, user, ev)
	case metadata.ProviderUploadcare:
		uuid, ferr := uploadcareUUID(fields)
		if ferr != nil {
			return ferr
		}
		f, created, err = s.Service.SaveUploadcare(ctx, user, uuid)
	default:
		return apierror.InvalidRequest("provider %q is not configured on this broker", provider)
	}
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	return c.JSON(status, fileResponse{Success: true, File: f})
}

// providerOfEvidence reads "provider" or infers it from the fields present:
// public_id is Cloudinary's, uuid/file_id/file are Uploadcare's.
func providerOfEvidence(fields map[string]json.RawMessage) (string, error) {
	p, err := stringField(fields, "provider")
	if err != nil {
		return "", err
	}
	switch p {
	case metadata.ProviderCloudinary, metadata.ProviderUploadcare:
		return p, nil
	case "":
	default:
		return "", apierror.InvalidRequest("provider must be cloudinary or uploadcare")
	}
	if _, ok := fields["public_id"]; ok {
		return metadata.ProviderCloudinary, nil
	}
	for _, name := range []string{"uuid", "file_id", "file"} {
		if _, ok := fields[name]; ok {
			return metadata.ProviderUploadcare, nil
		}
	}
	return "", apierror.InvalidRequest("public_id (Cloudinary) or uuid (Uploadcare) is required")
}

// uploadcareUUID reads the file's UUID under any of the names clients use:
// uuid (Uploadcare's own), file_id (Upload API /info/) or file (the /base/
// answer's key).
func uploadcareUUID(fields map[string]json.RawMessage) (string, error) {
	for _, name := range []string{"uuid", "file_id", "file"} {
		v, err := stringField(fields, name)
		if err != nil {
			return "", err
		}
		if v != "" {
			return v, nil
		}
	}
	return "", apierror.InvalidRequest("uuid is required for an Uploadcare file")
}

type listResponse struct {
	Success    bool            `json:"success"`
	Files      []metadata.File `json:"files"`
	NextCursor *string         `json:"next_cursor"`
}

var listResourceTypes = map[string]bool{"": true, "image": true, "video": true, "raw": true}

func (s *server) listFiles(c echo.Context) error {
	q := metadata.ListQuery{
		Provider:     c.QueryParam("provider"),
		ResourceType: c.QueryParam("resource_type"),
		Limit:        20,
	}
	if q.Provider != "" && q.Provider != metadata.ProviderCloudinary && q.Provider != metadata.ProviderUploadcare {
		return apierror.InvalidRequest("provider must be cloudinary or uploadcare")
	}
	if !listResourceTypes[q.ResourceType] {
		return apierror.InvalidRequest("resource_type must be image, video or raw")
	}
	if raw := c.QueryParam("limit"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > 100 {
			return apierror.InvalidRequest("limit must be a whole number from 1 to 100")
		}
		q.Limit = n
	}
	after, err := metadata.DecodeCursor(c.QueryParam("cursor"))
	if err != nil {
		return apierror.InvalidRequest("cursor is not valid; pass next_cursor from a previous page")
	}
	q.After = after
	files, next, err := s.Service.List(c.Request().Context(), auth.UserID(c), q)
	if err != nil {
		return err
	}
	resp := listResponse{Success: true, Files: files}
	if resp.Files == nil {
		resp.Files = []metadata.File{}
	}
	if !next.IsZero() {
		cursor := metadata.EncodeCursor(next)
		resp.NextCursor = &cursor
	}
	return c.JSON(http.StatusOK, resp)
}

// fileID reads the :id path parameter. Something that is not a UUID names
// no file, so it is 404 like any other unknown id.
func fileID(c echo.Context) (string, error) {
	id, err := uuid.Parse(c.Param("id"))
	if err != nil {
		return "", apierror.NotFound("no such file")
	}
	return id.String(), nil
}

func (s *server) getFile(c echo.Context) error {
	id, err := fileID(c)
	if err != nil {
		return err
	}
	f, err := s.Service.Get(c.Request().Context(), auth.UserID(c), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, fileResponse{Success: true, File: f})
}

func (s *server) deleteFile(c echo.Context) error {
	id, err := fileID(c)
	if err != nil {
		return err
	}
	if err := s.Service.Delete(c.Request().Context(), auth.UserID(c), id); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]bool{"success": true})
}
